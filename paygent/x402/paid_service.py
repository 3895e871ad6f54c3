"""A local paid HTTP service: the official x402 server middleware, settling on anvil in-process.

Routes are priced in Paygent USD atomic units with the token's EIP-712 domain. Payments are verified
and settled by the SDK's own facilitator logic (`x402Facilitator` + `FacilitatorWeb3Signer`), passed
straight into `x402ResourceServer` (no facilitator HTTP hop). Every route declares the
`payment-identifier` extension and the service honours it (see `paygent.x402.idempotency`): the same
identifier with the same payload gets the recorded answer again, with a different payload a 409.

Test routes: `/overcharge` asks far more than any sane cap, `/wrong-network` asks for payment on
another chain, `/unknown-asset` in another token; `/fail-after-pay` settles and then answers 500
(with the PAYMENT-RESPONSE receipt); `/flaky` settles and then holds its first answer until the
client gives up (a lost response), answering the retry from the recorded result; `/flaky-no-replay`
does the same without payment-identifier support, so a retry of the same (already used)
authorization is refused by the facilitator and the payer must reconcile on chain. A server error
is never turned into a 402. `/legacy-v1` answers like an x402 v1 server (requirements in the body).
`/large` answers over 1 MiB and declares its size in its 402 (`extra.contentLength`), `/large-undeclared` does not
declare it, `/image` answers bytes (image/png). `/mcp` serves paid MCP tools (paygent/x402/paid_mcp.py); it needs the app's lifespan to run (uvicorn's default).
"""

from __future__ import annotations

import contextlib
from typing import Any

from eth_utils import to_checksum_address
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from redis.asyncio import Redis
from x402 import x402Facilitator, x402ResourceServer
from x402.http import PAYMENT_RESPONSE_HEADER
from x402.http.middleware.fastapi import PaymentMiddlewareASGI
from x402.http.utils import encode_payment_response_header
from x402.mechanisms.evm import FacilitatorWeb3Signer
from x402.mechanisms.evm.exact import ExactEvmServerScheme, register_exact_evm_facilitator

from paygent.chain.token import TOKEN_NAME, TOKEN_VERSION
from paygent.x402 import identifier
from paygent.x402.idempotency import PaymentIdentifierCache, RedisAnswers
from paygent.x402.paid_mcp import build_paid_mcp

NETWORK = "eip155:31337"
OTHER_NETWORK = "eip155:84532"  # Base Sepolia: a real chain this service's payer is not on
# An address with no token behind it, for /unknown-asset (any asset but ours must be refused).
OTHER_ASSET = "0x000000000000000000000000000000000000dEaD"

PRICES_ATOMIC: dict[str, int] = {
    "/weather": 10_000,  # 0.01 USDC
    "/premium": 2_000_000,  # 2 USDC
    "/overcharge": 1_000_000_000,  # 1,000 USDC
    "/wrong-network": 10_000,
    "/unknown-asset": 10_000,
    "/fail-after-pay": 10_000,
    "/flaky": 10_000,
    "/flaky-no-replay": 10_000,  # like /flaky, but without payment-identifier support
    "/large": 10_000,  # an answer over 1 MiB, its size declared in the 402 (extra.contentLength)
    "/large-undeclared": 10_000,  # the same answer, its size not declared
    "/image": 10_000,  # a binary answer (image/png)
}
LARGE_BODY_BYTES = 1536 * 1024
DECLARED_SIZES = {"/large": LARGE_BODY_BYTES}
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
NO_IDENTIFIER_PATHS = frozenset({"/flaky-no-replay"})
MAX_TIMEOUT_SECONDS = 300


def _option(path: str, token: str, pay_to: str) -> dict[str, Any]:
    asset = OTHER_ASSET if path == "/unknown-asset" else token
    return {
        "scheme": "exact",
        "network": OTHER_NETWORK if path == "/wrong-network" else NETWORK,
        "payTo": pay_to,
        "price": {
            "amount": str(PRICES_ATOMIC[path]),
            "asset": asset,
            "extra": {
                "name": TOKEN_NAME,
                "version": TOKEN_VERSION,
                **({"contentLength": DECLARED_SIZES[path]} if path in DECLARED_SIZES else {}),
            },
        },
        "maxTimeoutSeconds": MAX_TIMEOUT_SECONDS,
    }


def route_config(token_address: str, pay_to: str) -> dict[str, Any]:
    """The middleware's routes: one `exact` option per priced path, payment-identifier declared."""
    token, pay_to = to_checksum_address(token_address), to_checksum_address(pay_to)
    return {
        f"GET {path}": {
            "accepts": _option(path, token, pay_to),
            "description": f"Paygent test resource {path}",
            "mimeType": "application/json",
            **(
                {}
                if path in NO_IDENTIFIER_PATHS
                else {"extensions": {identifier.PAYMENT_IDENTIFIER: identifier.declaration(required=False)}}
            ),
        }
        for path in PRICES_ATOMIC
    }


def resource_server(rpc_url: str, facilitator_private_key: str) -> x402ResourceServer:
    """The SDK's resource server with the SDK's facilitator logic in-process, settling on `rpc_url`."""
    facilitator = x402Facilitator()
    signer = FacilitatorWeb3Signer(private_key=facilitator_private_key, rpc_url=rpc_url)
    register_exact_evm_facilitator(facilitator, signer, networks=[NETWORK, OTHER_NETWORK])
    server = x402ResourceServer(facilitator)
    # x402 2.25 types ExactEvmServerScheme.payment_flows as a plain dict, not the protocol's PaymentFlowConfig
    server.register(NETWORK, ExactEvmServerScheme())  # type: ignore[arg-type]
    server.register(OTHER_NETWORK, ExactEvmServerScheme())  # type: ignore[arg-type]
    return server


def create_paid_service(
    rpc_url: str,
    token_address: str,
    pay_to: str,
    facilitator_private_key: str,
    *,
    redis_url: str,
    flaky_hold_seconds: float = 10.0,
) -> FastAPI:
    """The paid service as a FastAPI app. The facilitator key pays settlement gas; it is never logged.

    `redis_url`: where settled answers are kept by payment identifier (so a restart cannot settle a replay).
    `flaky_hold_seconds`: how long `/flaky` holds its first (already settled) answer before sending
    it anyway; a client whose read timeout is shorter sees a lost response.
    """
    server = resource_server(rpc_url, facilitator_private_key)

    # Paid MCP tools at /mcp (paygent/x402/paid_mcp.py), settled by the same facilitator. Stateless: POST only.
    paid_tools = build_paid_mcp(server, network=NETWORK, token=token_address, pay_to=pay_to)
    paid_tools.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        async with paid_tools.session_manager.run():
            yield

    app = FastAPI(title="Paygent paid service (x402)", docs_url=None, redoc_url=None, lifespan=lifespan)
    # an ASGI app is a valid endpoint (Starlette's Route runs any non-function as one); the type names handlers only
    app.add_route("/mcp", StreamableHTTPASGIApp(paid_tools.session_manager), methods=["POST"])  # type: ignore[arg-type]

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"ok": True, "network": NETWORK, "asset": to_checksum_address(token_address)}

    @app.get("/weather")
    async def weather() -> dict:
        return {"city": "Lisbon", "forecast": "sunny", "temperature_c": 21}

    @app.get("/premium")
    async def premium() -> dict:
        return {"report": "premium market summary", "items": 3}

    @app.get("/overcharge")
    async def overcharge() -> dict:
        return {"note": "you should never have paid this much"}

    @app.get("/wrong-network")
    async def wrong_network() -> dict:
        return {"note": "paid on another chain"}

    @app.get("/unknown-asset")
    async def unknown_asset() -> dict:
        return {"note": "paid in another token"}

    @app.get("/fail-after-pay")
    async def fail_after_pay(request: Request) -> JSONResponse:
        # The exact scheme settles after the handler, and the middleware never settles an error
        # response. This handler settles explicitly first, then fails: the 500 carries the receipt.
        settled = await server.settle_payment(request.state.payment_payload, request.state.payment_requirements)
        return JSONResponse(
            {"error": "the service failed after taking payment"},
            status_code=500,
            headers={PAYMENT_RESPONSE_HEADER: encode_payment_response_header(settled)},
        )

    @app.get("/flaky")
    async def flaky() -> dict:
        return {"note": "this answer was delivered on a retry"}

    @app.get("/flaky-no-replay")
    async def flaky_no_replay() -> dict:
        return {"note": "a retry of this payment is refused: nonce already used"}

    @app.get("/large")
    @app.get("/large-undeclared")
    async def large() -> Response:
        return Response(b"x" * LARGE_BODY_BYTES, media_type="text/plain")

    @app.get("/image")
    async def image() -> Response:
        return Response(PNG_BYTES, media_type="image/png")

    @app.get("/legacy-v1")
    async def legacy_v1(request: Request) -> JSONResponse:
        # An x402 v1 server: requirements in the 402 body, on a named network. The SDK has no v1
        # server side, so this route answers by hand; it is outside the middleware and never settles.
        return JSONResponse(
            {
                "x402Version": 1,
                "error": "X-PAYMENT header is required",
                "accepts": [
                    {
                        "scheme": "exact",
                        "network": "base-sepolia",
                        "maxAmountRequired": "10000",
                        "resource": str(request.url),
                        "description": "legacy v1 resource",
                        "mimeType": "application/json",
                        "payTo": to_checksum_address(pay_to),
                        "maxTimeoutSeconds": MAX_TIMEOUT_SECONDS,
                        "asset": to_checksum_address(token_address),
                        "extra": {"name": TOKEN_NAME, "version": TOKEN_VERSION},
                    }
                ],
            },
            status_code=402,
        )

    app.add_middleware(PaymentMiddlewareASGI, routes=route_config(token_address, pay_to), server=server)
    # Added last, so it runs outermost: it sees the settled answer the x402 middleware produced.
    app.add_middleware(
        PaymentIdentifierCache,
        answers=RedisAnswers(Redis.from_url(redis_url), pay_to),
        hold_first_response_paths={"/flaky", "/flaky-no-replay"},
        hold_seconds=flaky_hold_seconds,
    )
    return app
