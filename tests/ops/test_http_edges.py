"""HTTP edges the OpenAPI document promises: 413 for any oversized body, 405 with every allowed method, and a
body that is not even text refused as 422 naming `body`. Refusals start and record nothing."""

from __future__ import annotations

import uuid

import pytest

from api.payment_service import PAYMENT_NAMESPACE
from tests.api.helpers import auth, new_recipient


async def _chunks(data: bytes, size: int = 1024):
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def _nothing_recorded(http, dev, key: str) -> None:
    payment_id = uuid.uuid5(PAYMENT_NAMESPACE, f"{dev['tenant']['id']}:{key}")
    assert (await http.get(f"/v1/payments/{payment_id}", headers=auth(dev))).status_code == 404


def _oversized(dev) -> bytes:
    return (
        '{{"wallet_id": "{}", "to": "{}", "amount": "1", "asset": "USDC", "memo": "{}"}}'.format(
            dev["wallets"]["treasury"]["id"], new_recipient(), "x" * 40_000
        )
    ).encode()


async def test_oversized_body_with_content_length_is_413(http, dev):
    key = uuid.uuid4().hex
    r = await http.post(
        "/v1/payments",
        content=_oversized(dev),
        headers={**auth(dev), "Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"] == {"code": "body_too_large", "field": "body", "message": r.json()["error"]["message"]}
    await _nothing_recorded(http, dev, key)


async def test_oversized_chunked_body_is_413(http, dev):
    key = uuid.uuid4().hex
    r = await http.post(
        "/v1/payments",
        content=_chunks(_oversized(dev)),
        headers={**auth(dev), "Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert r.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "body_too_large"
    await _nothing_recorded(http, dev, key)


async def test_small_chunked_body_is_served(http, dev):
    body = b'{"wallet_id": "%s", "to": "%s", "amount": "0.5", "asset": "USDC"}' % (
        dev["wallets"]["treasury"]["id"].encode(),
        new_recipient().encode(),
    )
    r = await http.post(
        "/v1/payments",
        content=_chunks(body, 16),
        headers={**auth(dev), "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"},
    )
    assert r.status_code == 202, r.text


async def test_405_lists_every_method_served_at_the_path(http, dev):
    wallet = dev["wallets"]["treasury"]["id"]
    r = await http.patch(f"/v1/wallets/{wallet}/approval-policy", headers=auth(dev))
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "PUT", "DELETE"}
    r = await http.delete("/v1/payments", headers=auth(dev))  # GET lists the caller's payments, POST pays
    assert r.status_code == 405 and {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "POST"}


@pytest.mark.parametrize("body", [b"\x80\x81 not utf-8", b"\xff\xfe\x00 a utf-16 mark", b"{not json"])
async def test_body_that_is_not_json_text_is_422_naming_body(http, dev, body):
    key = uuid.uuid4().hex
    r = await http.post(
        "/v1/payments", content=body, headers={**auth(dev), "Idempotency-Key": key, "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "body"
    await _nothing_recorded(http, dev, key)
