"""Recording a payment, once, the same way whichever door it came in by (HTTP, MCP, an agent run's tool call).

`record_payment` writes the `payments` row once per (tenant, principal, idempotency key) and its audit entry, in
the caller's transaction; `payment_request` turns the stored row into PaymentWorkflow's input. The API
(api/payment_service.py) and the agent's paying tools (activities/agent_payments.py) both call these, so the row,
the audit entry and the request hash can never drift apart between channels.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.audit import append_audit
from paygent.db.schema import payments
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.payment import PaymentKind, PaymentRequest, PaymentStatus, payment_workflow_id


@dataclass(frozen=True)
class NewPayment:
    """One payment to record: who asks, through which channel, from which wallet, for what. Amounts are atomic."""

    payment_id: uuid.UUID
    tenant_id: uuid.UUID
    requested_by_id: uuid.UUID
    actor: str  # as the audit log names the caller, e.g. `alice` or `agent:shopper (owner alice)`
    channel: Channel
    wallet_id: uuid.UUID
    idempotency_key: str
    chain_id: int
    asset: str
    token_address: str
    to: str
    amount_atomic: int  # x402: the most the caller will pay
    memo: str | None = None
    kind: PaymentKind = PaymentKind.transfer
    url: str | None = None  # x402: the paid resource
    mcp_call: dict[str, Any] | None = None  # x402 over MCP: {"tool": ..., "arguments": {...}}
    audit_extra: dict[str, Any] = field(default_factory=dict)  # e.g. the agent run and tool call it came from
    swap: dict[str, Any] | None = None  # a swap's terms (details.swap): to_asset, token_out, slippage_bps, router

    def request_hash(self) -> str:
        """What makes two requests the same request: a reused idempotency key must carry an equal hash.
        The MCP tool call is part of it: another tool or argument is another request."""
        fields: dict[str, Any] = {
            "wallet_id": str(self.wallet_id),
            "to": self.to,
            "amount_atomic": self.amount_atomic,
            "asset": self.asset,
            "memo": self.memo,
        }
        if self.kind != PaymentKind.transfer:
            fields.update(kind=str(self.kind), url=self.url)
        if self.mcp_call is not None:
            fields["mcp"] = self.mcp_call
        if self.swap is not None:
            fields["swap"] = {k: self.swap[k] for k in ("to_asset", "slippage_bps")}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class RecordedPayment:
    row: RowMapping  # the stored row: the first request's when the key was used before
    matches: bool  # False when the key was used before for a different request (the caller answers 409)


async def record_payment(conn: AsyncConnection, new: NewPayment) -> RecordedPayment:
    """Record the payment once, audited (`payment.requested`, with the caller's channel), in `conn`'s transaction."""
    request_hash = new.request_hash()
    details: dict[str, Any] = {}
    if new.url:
        details["url"] = new.url
    if new.mcp_call is not None:
        details["mcp"] = new.mcp_call
    if new.swap is not None:
        details["swap"] = new.swap
    inserted = await conn.execute(
        pg_insert(payments)
        .values(
            id=new.payment_id,
            tenant_id=new.tenant_id,
            wallet_id=new.wallet_id,
            requested_by=new.requested_by_id,
            idempotency_key=new.idempotency_key,
            request_hash=request_hash,
            kind=str(new.kind),
            chain_id=new.chain_id,
            asset=new.asset,
            token_address=new.token_address,
            to_address=new.to,
            amount_atomic=new.amount_atomic,
            memo=new.memo,
            status=str(PaymentStatus.pending),
            workflow_id=payment_workflow_id(str(new.payment_id)),
            details=details,
        )
        .on_conflict_do_nothing(constraint="payments_idempotency_per_principal")
        .returning(*payments.c)  # the new row itself: no second read when it was inserted
    )
    row = inserted.mappings().first()
    if row is not None:
        await append_audit(
            conn,
            tenant_id=new.tenant_id,
            actor=new.actor,
            channel=new.channel,
            action=AuditAction.payment_requested,
            subject_type=AuditSubject.payment,
            subject_id=str(new.payment_id),
            data={
                "to": new.to,
                "amount_atomic": str(new.amount_atomic),
                "asset": new.asset,
                "wallet_id": str(new.wallet_id),
                "memo": new.memo,
                **new.audit_extra,
                **({"url": new.url} if new.url else {}),
                **({"mcp_tool": new.mcp_call["tool"]} if new.mcp_call is not None else {}),
                **({"swap": new.swap} if new.swap is not None else {}),
            },
        )
        return RecordedPayment(row=row, matches=True)
    row = (  # the key was used before: the first request's row decides whether this one is a replay
        (
            await conn.execute(
                sa.select(payments).where(
                    payments.c.tenant_id == new.tenant_id,
                    payments.c.requested_by == new.requested_by_id,
                    payments.c.idempotency_key == new.idempotency_key,
                )
            )
        )
        .mappings()
        .one()
    )
    return RecordedPayment(row=row, matches=row["request_hash"] == request_hash)


def payment_request(
    row: RowMapping, wallet_address: str, *, requested_by: str, decimals: int, local_steps: bool = False
) -> PaymentRequest:
    """PaymentWorkflow's input for a recorded payment row."""
    kind = PaymentKind(row["kind"])
    return PaymentRequest(
        payment_id=str(row["id"]),
        tenant_id=str(row["tenant_id"]),
        wallet_id=str(row["wallet_id"]),
        wallet_address=wallet_address,
        requested_by=requested_by,
        requested_by_id=str(row["requested_by"]),
        chain_id=int(row["chain_id"]),
        asset=row["asset"],
        decimals=decimals,
        token_address=row["token_address"],
        to=row["to_address"],
        amount_atomic=int(row["amount_atomic"]),
        memo=row["memo"],
        kind=kind,
        url=(row["details"] or {}).get("url"),
        max_amount_atomic=int(row["amount_atomic"]) if kind == PaymentKind.x402 else None,
        local_steps=local_steps,
    )
