"""MCP tools for x402 spending sessions: start one (a budget reserved and approved once), fetch paid URLs in it,
read it, end it. Same service, roles, grants, limits and audit as the HTTP routes (channel `mcp`)."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from api.mcp import schemas as o
from api.mcp.access import CANCELS, PAYS, READ, ToolAccess
from api.mcp.caller import caller
from api.x402_session_service import FetchSpec, SessionSpec, end_session, session_fetch, session_view, start_session
from paygent.domain.channels import Channel
from paygent.domain.text import SafeText

Amount = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$", description='Decimal string in token units, e.g. "0.25"')]
RequestId = Annotated[
    SafeText | None,
    Field(
        None,
        max_length=200,
        description="Your idempotency key: repeat it to retry safely (never paid twice). Omit it only if you will "
        "not retry.",
    ),
]


def register(tools: ToolAccess) -> None:
    @tools.tool(
        PAYS,
        description="Start an x402 spending session: `budget` (token units) is reserved once against your "
        "spending limits (and approved once if the wallet's policy asks), then x402_session_fetch pays "
        "for requests to the allowed `origins` (scheme://host[:port]) without asking again, each at most "
        "`max_price`, until `ttl_seconds` pass or x402_session_end. Answers the session id and status "
        "(active, or awaiting_approval: wait, then check x402_session_status).",
    )
    async def x402_session_start(
        ctx: Context,
        wallet_id: Annotated[str, Field(description="The paying wallet's id")],
        budget: Amount,
        origins: Annotated[list[SafeText], Field(min_length=1, max_length=20)],
        ttl_seconds: Annotated[int, Field(ge=1, le=7 * 86400)] = 900,
        max_price: Amount | None = None,
        request_id: RequestId = None,
    ) -> o.X402Session:
        d, who = caller(ctx)
        spec = SessionSpec(
            wallet_id=wallet_id, budget=budget, max_price=max_price, ttl_seconds=ttl_seconds, origins=list(origins)
        )
        view = await start_session(d, who, spec, request_id, channel=Channel.mcp)
        if view["status"] == "refused":
            raise ToolError(f"limit_refused: {view['reason']}")
        return o.X402Session.model_validate(view)

    @tools.tool(
        PAYS,
        description="Fetch a URL inside your x402 session, paying the server's x402 price from the session's "
        "budget (refused, with nothing paid, if the origin is not allowed, the price is above the ceiling "
        "or what is left, or the session ended). Answers status_code, headers, body (base64 when "
        "body_encoding says so; at most 1 MiB) and paid {amount, payment_id, tx_hash}.",
    )
    async def x402_session_fetch(
        ctx: Context,
        session_id: str,
        url: Annotated[SafeText, Field(max_length=2000)],
        method: Annotated[str, Field(pattern="^(GET|POST|PUT|PATCH|DELETE|HEAD)$")] = "GET",
        headers: Annotated[dict[str, SafeText] | None, Field(None, max_length=50)] = None,
        body: Annotated[str | None, Field(None, max_length=2 * 1024 * 1024)] = None,
        max_amount: Amount | None = None,
        request_id: RequestId = None,
    ) -> o.SessionFetched:
        d, who = caller(ctx)
        spec = FetchSpec(url=url, method=method, headers=dict(headers or {}), body=body, max_amount=max_amount)
        return o.SessionFetched.model_validate(
            await session_fetch(d, who, session_id, spec, request_id, channel=Channel.mcp)
        )

    @tools.tool(
        READ,
        description="Your x402 session: status, budget, spent, held (signed, settlement not yet known), "
        "remaining, expiry, last error and the paid requests.",
    )
    async def x402_session_status(ctx: Context, session_id: str) -> o.X402Session:
        d, who = caller(ctx)
        return o.X402Session.model_validate(await session_view(d, who, session_id))

    @tools.tool(
        CANCELS,
        description="End your x402 session now: what is left of its budget is released. Answers the final state.",
    )
    async def x402_session_end(ctx: Context, session_id: str) -> o.X402Session:
        d, who = caller(ctx)
        return o.X402Session.model_validate(await end_session(d, who, session_id, channel=Channel.mcp))
