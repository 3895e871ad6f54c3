"""An x402 server that takes Paygent's signed authorization and misbehaves, built on the official SDK.

The SDK's `PaymentMiddlewareASGI` answers the unpaid 402 and verifies the paid request with the SDK's
facilitator on anvil; the handlers then misbehave instead of letting the middleware settle:
- `/late-200`: answers 200 without a PAYMENT-RESPONSE receipt, and settles the authorization `settle_after`
  seconds later;
- `/late-402`: answers 402 again ("pay again"), and settles the authorization later all the same;
- `/never`: answers 200 without a receipt and never settles;
- `/settled-no-receipt`: settles the authorization, then answers 200 without the receipt (the client sees the
  payment only on chain, not which transaction made it).
Each route asks for a short `maxTimeoutSeconds`, so the authorization the SDK client signs has a short
`validBefore`. The middleware never settles an error answer, so the handlers answer with a marker status
(`HOLD_STATUS`) that the outer `_Rewrite` middleware turns into the status the route claims.
"""

from __future__ import annotations

import asyncio

from eth_utils import to_checksum_address
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from x402.http.middleware.fastapi import PaymentMiddlewareASGI

from paygent.chain.token import TOKEN_NAME, TOKEN_VERSION
from paygent.x402.paid_service import NETWORK, resource_server

PRICE_ATOMIC = 10_000
HOLD_STATUS = 418  # >= 400: the SDK middleware does not settle it; rewritten on the way out
CLAIMED_STATUS_HEADER = "x-claimed-status"


class _Rewrite:
    """Outermost ASGI middleware: a HOLD_STATUS answer leaves as its claimed status, with no receipt header."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def rewrite(message):
            if message["type"] == "http.response.start" and message["status"] == HOLD_STATUS:
                headers = [
                    (k, v)
                    for k, v in message["headers"]
                    if k.lower() not in (b"payment-response", b"x-payment-response")
                ]
                claimed = dict(headers).get(CLAIMED_STATUS_HEADER.encode(), b"200")
                message = {**message, "status": int(claimed), "headers": headers}
            await send(message)

        await self.app(scope, receive, rewrite)


def create_misbehaving_service(
    rpc_url: str,
    token_address: str,
    pay_to: str,
    facilitator_private_key: str,
    *,
    settle_after: float = 5.0,
    max_timeout_seconds: int = 20,
) -> FastAPI:
    server = resource_server(rpc_url, facilitator_private_key)
    app = FastAPI(docs_url=None, redoc_url=None)
    app.state.settlements = []  # background tasks, awaited by the fixture before the server stops

    def settle_later(request: Request) -> None:
        payload, requirements = request.state.payment_payload, request.state.payment_requirements

        async def settle() -> None:
            await asyncio.sleep(settle_after)
            await server.settle_payment(payload, requirements)

        app.state.settlements.append(asyncio.create_task(settle()))

    def held(claimed: int, body: dict) -> JSONResponse:
        return JSONResponse(body, status_code=HOLD_STATUS, headers={CLAIMED_STATUS_HEADER: str(claimed)})

    @app.get("/late-200")
    async def late_200(request: Request) -> JSONResponse:
        settle_later(request)
        return held(200, {"note": "served; the payment settles later"})

    @app.get("/late-402")
    async def late_402(request: Request) -> JSONResponse:
        settle_later(request)
        return held(402, {"error": "payment required"})

    @app.get("/never")
    async def never(request: Request) -> JSONResponse:
        return held(200, {"note": "served; never settled"})

    @app.get("/settled-no-receipt")
    async def settled_no_receipt(request: Request) -> JSONResponse:
        settled = await server.settle_payment(request.state.payment_payload, request.state.payment_requirements)
        if not settled.success:  # the test then sees the payment fail, with the facilitator's reason
            return JSONResponse({"error": settled.error_reason}, status_code=503)
        return held(200, {"note": "served and settled; the receipt is withheld"})

    option = {
        "scheme": "exact",
        "network": NETWORK,
        "payTo": to_checksum_address(pay_to),
        "price": {
            "amount": str(PRICE_ATOMIC),
            "asset": to_checksum_address(token_address),
            "extra": {"name": TOKEN_NAME, "version": TOKEN_VERSION},
        },
        "maxTimeoutSeconds": max_timeout_seconds,
    }
    routes = {
        f"GET {path}": {"accepts": option, "description": f"misbehaving {path}", "mimeType": "application/json"}
        for path in ("/late-200", "/late-402", "/never", "/settled-no-receipt")
    }
    app.add_middleware(PaymentMiddlewareASGI, routes=routes, server=server)
    app.add_middleware(_Rewrite)
    return app
