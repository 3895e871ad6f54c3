"""POST /v1/payments starts a PaymentWorkflow exactly once per (tenant, principal, Idempotency-Key); GET reads
payments back (one, or the caller's own as a list). The work is done by api/payment_service.py, shared with the
MCP tools and agent runs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from api.approval_http import channel
from api.authz import Role, allow
from api.deps import Deps, deps
from api.payment_cancel import cancel_payment as cancel
from api.payment_depth import depth_view
from api.payment_service import (
    PaymentSpec,
    check_idempotency_key,
    list_payments,
    payment_view,
    readable_payment,
    start_payment,
)
from paygent.db.accounts import Principal
from paygent.db.payment_history import status_history
from paygent.db.tenancy import tenant_transaction
from paygent.domain.channels import Channel
from paygent.domain.payment import PaymentKind
from paygent.domain.text import SafeText
from paygent.payment_input import DecimalText

router = APIRouter(prefix="/v1/payments", tags=["payments"])


class PaymentCreate(BaseModel):
    """A token transfer (`kind` omitted or "transfer")."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["transfer"] = "transfer"
    wallet_id: SafeText = Field(description="The paying wallet's id")
    to: SafeText = Field(description="Recipient address, 0x-prefixed")
    amount: DecimalText = Field(description='Decimal string in token units, e.g. "12.50" (a JSON number is refused)')
    asset: SafeText = Field(description="Token symbol, e.g. USDC")
    memo: SafeText | None = Field(None, max_length=500)


class X402PaymentCreate(BaseModel):
    """Fetch `url`, paying with x402 if the server asks, at most `max_amount` (token units)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["x402"]
    wallet_id: SafeText
    url: SafeText = Field(max_length=2000)
    max_amount: DecimalText
    asset: SafeText = "USDC"
    memo: SafeText | None = Field(None, max_length=500)


def _kind(value) -> str:
    return (value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)) or "transfer"


PaymentBody = Annotated[
    Annotated[PaymentCreate, Tag("transfer")] | Annotated[X402PaymentCreate, Tag("x402")], Discriminator(_kind)
]


@router.post("", status_code=202)
async def create_payment(
    body: PaymentBody,
    who: Principal = Depends(allow(Role.requester, agents=True)),
    d: Deps = Depends(deps),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    key = check_idempotency_key(idempotency_key)
    spec = PaymentSpec(
        wallet_id=body.wallet_id,
        asset=body.asset,
        kind=PaymentKind(body.kind),
        memo=body.memo,
        to=getattr(body, "to", None),
        amount=getattr(body, "amount", None),
        url=getattr(body, "url", None),
        max_amount=getattr(body, "max_amount", None),
    )
    row = await start_payment(d, who, spec, key, channel=Channel.api)
    return JSONResponse(
        {"id": str(row["id"]), "status": row["status"], "workflow_id": row["workflow_id"]}, status_code=202
    )


@router.get("")
async def list_own(
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
    status: str | None = Query(None, description="only payments in this status, e.g. confirmed"),
    who: Principal = Depends(allow(*Role, agents=True)),
    d: Deps = Depends(deps),
):
    """The caller's own payments, newest first (admins and auditors: the tenant's). Follow `next_cursor`."""
    rows, next_cursor = await list_payments(d, who, limit=limit, cursor=cursor, status=status)
    return {"items": [payment_view(r, d.settings) for r in rows], "next_cursor": next_cursor}


@router.get("/{payment_id}")
async def get_payment(payment_id: str, who: Principal = Depends(allow(*Role, agents=True)), d: Deps = Depends(deps)):
    row = await readable_payment(d, who, payment_id)
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        history = await status_history(conn, row["id"])
    return {**payment_view(row, d.settings), **await depth_view(d, who.tenant_id, row), "status_history": history}


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: SafeText | None = Field(None, max_length=500)


@router.post("/{payment_id}/cancel")
async def cancel_payment(
    payment_id: str,
    body: CancelBody | None = None,
    who: Principal = Depends(allow(Role.requester, Role.admin, agents=True)),
    d: Deps = Depends(deps),
    request_id: str | None = Header(None, alias="Idempotency-Key"),
    via: Channel = Depends(channel),
):
    """Before signing: `cancelled`, reservation released. After: 409 with the reason."""
    reason = body.reason if body else None
    return await cancel(d, who, payment_id, channel=via, reason=reason, request_id=request_id)
