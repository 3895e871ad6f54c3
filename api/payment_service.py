"""Starting and reading payments for the HTTP routes (api/routes/payments.py) and the MCP tools (api/mcp/). Agent
runs (activities/agent_payments.py) record theirs in an activity; both check the input with the same function
(paygent/payment_input.py) and record with the same `record_payment`, so the same rules, audit row and workflow
apply whichever door a payment came in by.

A payment is recorded once per (tenant, principal, idempotency key) in the caller's tenant, audited with the
caller's channel, then a PaymentWorkflow is started (or joined) under an id derived from that key.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from api import cursor as cursors
from api.authz import not_found, oversees, spendable_wallet, takes_part
from api.deps import Deps
from api.errors import ApiError
from paygent.db.accounts import Principal
from paygent.db.payments import NewPayment, payment_request, record_payment
from paygent.db.schema import approvals, payments
from paygent.db.tenancy import tenant_transaction
from paygent.domain.channels import Channel
from paygent.domain.errors import InvalidInput
from paygent.domain.money import format_amount, format_money
from paygent.domain.payment import PaymentKind, PaymentStatus
from paygent.payment_input import AssetUnavailable, PaymentFields, check_payment_input
from paygent.payment_start import start_payment_workflow
from paygent.settings import Settings

PAYMENT_NAMESPACE = uuid.UUID("6f1c2a52-8f0e-4d7e-9a55-0c1b5e1d2a10")


@dataclass(frozen=True)
class PaymentSpec:
    """What a caller asked for, as text from the edge (amounts are decimal strings in token units).

    kind "transfer": `to` and `amount`. kind "x402": `url` and `max_amount` (the server's 402 names price and
    recipient); `mcp_tool` set means the paid resource is a tool on the MCP server at `url`, called with
    `mcp_arguments` (see paygent/x402/mcp_transport.py)."""

    wallet_id: str
    asset: str
    kind: PaymentKind = PaymentKind.transfer
    to: str | None = None
    amount: str | None = None
    url: str | None = None
    max_amount: str | None = None
    memo: str | None = None
    mcp_tool: str | None = None
    mcp_arguments: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> PaymentFields:
        return PaymentFields(
            kind=self.kind, asset=self.asset, to=self.to, amount=self.amount, url=self.url, max_amount=self.max_amount
        )


def check_idempotency_key(key: str | None) -> str:
    if not key or len(key) > 200:
        raise ApiError(
            400, "invalid_input", "Idempotency-Key: a header of 1-200 characters is required", "Idempotency-Key"
        )
    return key


def payment_id_for(who: Principal, idempotency_key: str) -> uuid.UUID:
    """The key is the caller's own: another principal's identical key makes another payment, and reveals nothing."""
    return uuid.uuid5(PAYMENT_NAMESPACE, f"{who.tenant_id}:{who.user_id}:{idempotency_key}")


async def start_payment(d: Deps, who: Principal, spec: PaymentSpec, idempotency_key: str, *, channel: Channel):
    """Check the caller may spend from the wallet, check the input (paygent/payment_input.py, as agent runs do),
    record once, start (or join) the workflow.

    Returns the stored row. No grant, 403; bad input raises InvalidInput naming the field; a reused key with
    another request, 409: in every refusal nothing is recorded or started."""
    try:
        wallet_id = uuid.UUID(spec.wallet_id)
    except ValueError:
        raise InvalidInput("wallet_id", "must be a UUID") from None
    mcp_call = {"tool": spec.mcp_tool, "arguments": spec.mcp_arguments} if spec.mcp_tool else None
    if d.admission is not None:
        # The workers have enough to run: 429 before any database work, so that shedding load is cheap (under a
        # burst most answers are 429s; issue 18). Nothing is recorded or started either way.
        await d.admission.admit()
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        wallet = await spendable_wallet(conn, who, wallet_id)
        try:
            checked = await check_payment_input(d.settings, spec.fields(), payer=wallet.address)
        except AssetUnavailable as exc:
            raise ApiError(503, "asset_unavailable", str(exc), exc.field) from None
        row = await record_once(
            conn,
            d,
            who,
            idempotency_key,
            channel=channel,
            wallet_id=wallet_id,
            asset=checked.asset,
            token_address=checked.token_address,
            to=checked.to,
            amount_atomic=checked.amount_atomic,
            memo=spec.memo,
            kind=checked.kind,
            url=checked.url,
            mcp_call=mcp_call if checked.kind == PaymentKind.x402 else None,
        )
    request = payment_request(
        row, wallet.address, requested_by=who.actor, decimals=checked.decimals, local_steps=d.settings.local_steps
    )
    await start_payment_workflow(d.temporal, d.settings.task_queue, request, wallet.name)
    return row


async def record_once(
    conn: AsyncConnection,
    d: Deps,
    who: Principal,
    idempotency_key: str,
    *,
    channel: Channel,
    wallet_id: uuid.UUID,
    **terms: Any,
) -> RowMapping:
    """Record the caller's payment or swap once, in `conn`'s transaction (`record_payment`: row and audit entry),
    under the id its key gives (`payment_id_for`), and return the stored row; the caller then starts (or joins)
    its workflow. `terms` are the kind's own NewPayment fields (asset, token_address, to, amount_atomic, memo,
    kind, and url and mcp_call, or swap). A reused key with another request, 409: nothing recorded."""
    recorded = await record_payment(
        conn,
        NewPayment(
            payment_id=payment_id_for(who, idempotency_key),
            tenant_id=who.tenant_id,
            requested_by_id=who.user_id,
            actor=who.actor,
            channel=channel,
            wallet_id=wallet_id,
            idempotency_key=idempotency_key,
            chain_id=d.settings.chain_id,
            **terms,
        ),
    )
    if not recorded.matches:
        raise ApiError(
            409, "idempotency_conflict", "Idempotency-Key: already used for a different request", "Idempotency-Key"
        )
    return recorded.row


def payment_view(row, settings: Settings) -> dict:
    decimals = settings.unit_of(row["asset"]).decimals
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "kind": row["kind"],
        "amount": format_amount(int(row["amount_atomic"]), decimals),
        "amount_atomic": str(int(row["amount_atomic"])),
        "amount_text": format_money(int(row["amount_atomic"]), decimals, row["asset"]),
        "asset": row["asset"],
        "to": row["to_address"],
        "wallet_id": str(row["wallet_id"]),
        "memo": row["memo"],
        "tx_hash": row["tx_hash"],
        "block_number": row["block_number"],
        "failure_reason": row["failure_reason"],
        "workflow_id": row["workflow_id"],
        "temporal_ui_url": f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{row['workflow_id']}",
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        **({"x402": _x402_view(row["details"])} if row["kind"] == PaymentKind.x402 else {}),
        **({"swap": (row["details"] or {}).get("swap")} if row["kind"] == PaymentKind.swap else {}),
        **({"session_id": str(row["session_id"])} if row.get("session_id") else {}),  # an x402 session's request
    }


def _x402_view(details: dict) -> dict:
    """What the paid request did; never the signed authorization itself (whoever holds it could settle it)."""
    response = details.get("response") or {}
    signed = details.get("signed") or {}
    mcp = details.get("mcp")
    return {
        "url": details.get("url"),
        "outcome": details.get("outcome"),
        "refusal": details.get("refusal"),
        "authorization_valid_before": signed.get("valid_before"),
        "response_status": response.get("status"),
        "response_body_excerpt": response.get("body_excerpt"),
        "receipt": details.get("receipt"),
        **({"mcp_tool": mcp["tool"]} if mcp else {}),
    }


async def readable_payment(d: Deps, who: Principal, payment_id: str):
    """The payment row if the caller may read it (`may_read_payment`); anything else (a bad id, another
    tenant's, another principal's that the caller takes no part in) is the same 404, so ids reveal nothing."""
    try:
        pid = uuid.UUID(payment_id)
    except ValueError:
        raise not_found("payment") from None
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        row = (
            (await conn.execute(sa.select(payments).where(payments.c.id == pid, payments.c.tenant_id == who.tenant_id)))
            .mappings()
            .first()
        )
        if row is not None and not await may_read_payment(conn, who, row):
            row = None
    if row is None:
        raise not_found("payment")
    return row


async def may_read_payment(conn, who: Principal, row) -> bool:
    """The lists' rule for one payment: its requester; admins and auditors (not agents); and the people its
    approval lists, as `GET /v1/approvals` shows it to them (they decide on its amount and recipient)."""
    if row["requested_by"] == who.user_id or oversees(who):
        return True
    if who.is_agent:
        return False
    part = (
        await conn.execute(
            sa.select(
                approvals.c.initiator, approvals.c.approvers, approvals.c.approved_by, approvals.c.awaiting
            ).where(approvals.c.payment_id == str(row["id"]), approvals.c.tenant_id == who.tenant_id)
        )
    ).first()
    return part is not None and takes_part(who, [part.initiator], part.approvers, part.approved_by, part.awaiting)


async def list_payments(
    d: Deps, who: Principal, *, limit: int, cursor: str | None = None, status: str | None = None
) -> tuple[Sequence[RowMapping], str | None]:
    """Newest first: the caller's own payments; admins and auditors see the tenant's. (rows, next cursor)."""
    where = [payments.c.tenant_id == who.tenant_id]
    if not oversees(who):
        where.append(payments.c.requested_by == who.user_id)
    if status:
        if status not in set(PaymentStatus):
            raise InvalidInput("status", f"unknown status {status!r}; one of {', '.join(sorted(PaymentStatus))}")
        where.append(payments.c.status == status)
    if cursor:
        at, after = cursors.decode(cursor)
        try:
            after_id = uuid.UUID(after)
        except ValueError:
            raise InvalidInput("cursor", "is not a cursor this API returned (use next_cursor as given)") from None
        where.append(sa.tuple_(payments.c.created_at, payments.c.id) < sa.tuple_(sa.literal(at), sa.literal(after_id)))
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        rows = (
            (
                await conn.execute(
                    sa.select(payments)
                    .where(*where)
                    .order_by(payments.c.created_at.desc(), payments.c.id.desc())
                    .limit(limit + 1)
                )
            )
            .mappings()
            .all()
        )
    more, rows = len(rows) > limit, rows[:limit]
    return rows, cursors.encode(rows[-1]["created_at"], rows[-1]["id"]) if more and rows else None
