"""The paid service's outer middleware turns the SDK's 402-for-a-server-failure into a 502.

The x402 middleware answers 402 (with a failed PAYMENT-RESPONSE) when settling raises on the server's
side; provoking that on a healthy anvil is not possible, so the inner app here plays exactly that
answer, built with the SDK's own header encoder, and the real `PaymentIdentifierCache` wraps it.
"""

from __future__ import annotations

import json
import uuid

import httpx
from redis.asyncio import Redis
from x402.http.utils import decode_payment_response_header, encode_payment_response_header
from x402.schemas import SettleResponse

from paygent.x402.idempotency import PaymentIdentifierCache, RedisAnswers


def _inner(reason: str):
    async def app(scope, receive, send) -> None:
        receipt = SettleResponse(success=False, error_reason=reason, transaction="", network="eip155:31337")
        body = b"{}"
        await send(
            {
                "type": "http.response.start",
                "status": 402,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"2"),
                    (b"payment-response", encode_payment_response_header(receipt).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


async def _get(reason: str, redis_url: str) -> httpx.Response:
    answers = RedisAnswers(Redis.from_url(redis_url), f"test-{uuid.uuid4().hex}")
    transport = httpx.ASGITransport(app=PaymentIdentifierCache(_inner(reason), answers))
    async with httpx.AsyncClient(transport=transport, base_url="http://paid.test") as http:
        return await http.get("/weather", headers={"PAYMENT-SIGNATURE": "bm90LWpzb24="})


async def test_server_side_settle_failure_is_a_502_with_its_receipt(redis_url):
    resp = await _get("unexpected_settle_error", redis_url)
    assert resp.status_code == 502
    assert json.loads(resp.content) == {
        "error": "settlement failed on the server side",
        "reason": "unexpected_settle_error",
    }
    assert decode_payment_response_header(resp.headers["payment-response"]).error_reason == "unexpected_settle_error"


async def test_a_verdict_on_the_payment_stays_a_402(redis_url):
    resp = await _get("invalid_exact_evm_insufficient_balance", redis_url)
    assert resp.status_code == 402
