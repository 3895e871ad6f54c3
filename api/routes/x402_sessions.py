"""x402 spending sessions over HTTP: POST /v1/x402/sessions starts one, POST .../{id}/fetch makes a paid request
in it, GET reads it, DELETE ends it. The work is done by api/x402_session_service.py, shared with the MCP tools."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.approval_http import channel
from api.authz import Role, allow
from api.deps import Deps, deps
from api.x402_session_service import (
    FetchSpec,
    SessionSpec,
    end_session,
    session_fetch,
    session_view,
    start_session,
)
from paygent.db.accounts import Principal
from paygent.domain.channels import Channel
from paygent.domain.text import SafeText

router = APIRouter(prefix="/v1/x402/sessions", tags=["x402 sessions"])


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wallet_id: SafeText = Field(description="The paying wallet's id")
    budget: SafeText = Field(description='The most the whole session may pay, token units, e.g. "1.00"')
    max_price: SafeText | None = Field(None, description="The most one request may pay (token units)")
    ttl_seconds: int = Field(ge=1, le=7 * 86400, description="The session ends this many seconds from now")
    origins: list[SafeText] = Field(min_length=1, max_length=20, description="Allowed scheme://host[:port]")


class FetchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: SafeText = Field(max_length=2000)
    method: SafeText = "GET"
    headers: dict[str, SafeText] = Field(default_factory=dict, max_length=50)
    body: SafeText | None = Field(None, max_length=2 * 1024 * 1024, description="text, or base64 (body_encoding)")
    body_encoding: Literal["text", "base64"] = "text"
    max_amount: SafeText | None = Field(None, description="The most this request may pay (token units)")


@router.post("", status_code=201)
async def create_session(
    body: SessionCreate,
    who: Principal = Depends(allow(Role.requester, agents=True)),
    d: Deps = Depends(deps),
    via: Channel = Depends(channel),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=200),
):
    """Reserve `budget` once (and ask for approval once if the wallet's tier wants it); `status` is `active` or
    `awaiting_approval` (or `refused`, naming the limit, with 409)."""
    spec = SessionSpec(
        wallet_id=body.wallet_id,
        budget=body.budget,
        max_price=body.max_price,
        ttl_seconds=body.ttl_seconds,
        origins=list(body.origins),
    )
    view = await start_session(d, who, spec, idempotency_key, channel=via)
    if view["status"] == "refused":
        return JSONResponse(
            {"error": {"code": "limit_refused", "field": "budget", "message": view["reason"]}, "session": view},
            status_code=409,
        )
    return JSONResponse(view, status_code=201)


@router.post("/{session_id}/fetch")
async def fetch(
    session_id: str,
    body: FetchBody,
    who: Principal = Depends(allow(Role.requester, agents=True)),
    d: Deps = Depends(deps),
    via: Channel = Depends(channel),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=200),
):
    """One paid request: {status_code, headers, body, paid: {amount, payment_id, tx_hash}}. Repeat the
    Idempotency-Key to retry safely: the same payment-identifier is sent, never a second payment."""
    spec = FetchSpec(
        url=body.url,
        method=body.method,
        headers=dict(body.headers),
        body=body.body,
        body_encoding=body.body_encoding,
        max_amount=body.max_amount,
    )
    out = await session_fetch(d, who, session_id, spec, idempotency_key, channel=via)
    return JSONResponse(out, status_code=413 if "error" in out else 200)


@router.get("/{session_id}")
async def get_session(session_id: str, who: Principal = Depends(allow(*Role, agents=True)), d: Deps = Depends(deps)):
    """Budget, spent, held (signed, not known settled), remaining, expiry, and the paid requests."""
    return await session_view(d, who, session_id)


@router.delete("/{session_id}")
async def delete_session(
    session_id: str,
    who: Principal = Depends(allow(Role.requester, Role.admin, agents=True)),
    d: Deps = Depends(deps),
    via: Channel = Depends(channel),
):
    """End the session now; what is left of the budget is released. Answers the final state."""
    return await end_session(d, who, session_id, channel=via)
