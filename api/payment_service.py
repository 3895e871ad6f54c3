"""Starting and reading payments, one way for every channel: the HTTP routes (api/routes/payments.py), the MCP
tools (api/mcp/) and agent runs (activities/agent_payments.py) all go through these functions, so the same
roles, grants, idempotency, audit row and workflow apply whichever door a payment came in by.

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

from api import cursor as cursors
from api.authz import oversees, spendable_wallet
from api.deps import Deps
from api.errors import ApiError
from paygent.db.accounts import Principal
from paygent.db.payments import NewPayment, payment_request, record_payment
from paygent.db.schema import payments
from paygent.db.tenancy import tenant_transaction
from paygent.domain.addresses import parse_address
from paygent.domain.channels import Channel
from paygent.domain.errors import InvalidInput
from paygent.domain.money import format_amount, parse_amount
from paygent.domain.payment import (
    ZERO_ADDRESS,
    PaymentKind,
    PaymentStatus,
)
from paygent.egress import require_allowed
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


def resolve_asset(settings: Settings, symbol: str) -> tuple[str, int]:
    if not settings.token_address:
        raise ApiError(503, "asset_unavailable", "asset: no token is configured on this server", "asset")
    if symbol != settings.token_symbol:
        raise InvalidInput("asset", f"unknown asset {symbol!r}; known: {settings.token_symbol}")
    return settings.token_address, settings.token_decimals


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
    """Validate, check the caller may spend from the wallet, record once, start (or join) the workflow.

    Returns the stored row. Bad input raises InvalidInput naming the field; no grant, 403; a reused key with
    another request, 409: in every refusal nothing is recorded or started."""
    token_address, decimals = resolve_asset(d.settings, spec.asset)
    mcp_call = None
    if spec.kind == PaymentKind.x402:
        amount_atomic = parse_amount(spec.max_amount or "", decimals, field="max_amount")
        await require_allowed(d.settings, spec.url or "", field="url")  # before anything is recorded or started
        to = ZERO_ADDRESS  # the server's 402 answer names the recipient; recorded once probed
        if spec.mcp_tool:
            mcp_call = {"tool": spec.mcp_tool, "arguments": spec.mcp_arguments}
    else:
        amount_atomic = parse_amount(spec.amount or "", decimals)
        to = parse_address(spec.to, field="to")
    try:
        wallet_id = uuid.UUID(spec.wallet_id)
    except ValueError:
        raise InvalidInput("wallet_id", "must be a UUID") from None
    payment_id = payment_id_for(who, idempotency_key)
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        wallet = await spendable_wallet(conn, who, wallet_id)
        if d.admission is not None:  # the workers have enough to run: 429, and the transaction writes nothing
            await d.admission.admit()
        recorded = await record_payment(
            conn,
            NewPayment(
                payment_id=payment_id,
                tenant_id=who.tenant_id,
                requested_by_id=who.user_id,
                actor=who.actor,
                channel=channel,
                wallet_id=wallet_id,
                idempotency_key=idempotency_key,
                chain_id=d.settings.chain_id,
                asset=spec.asset,
                token_address=token_address,
                to=to,
                amount_atomic=amount_atomic,
                memo=spec.memo,
                kind=spec.kind,
                url=spec.url if spec.kind == PaymentKind.x402 else None,
                mcp_call=mcp_call,
            ),
        )
    if not recorded.matches:
        raise ApiError(
            409, "idempotency_conflict", "Idempotency-Key: already used for a different request", "Idempotency-Key"
        )
    row = recorded.row
    request = payment_request(
        row, wallet.address, requested_by=who.actor, decimals=decimals, local_steps=d.settings.local_steps
    )
    await start_payment_workflow(d.temporal, d.settings.task_queue, request, wallet.name)
    return row


def payment_view(row, settings: Settings) -> dict:
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "kind": row["kind"],
        "amount": format_amount(int(row["amount_atomic"]), settings.token_decimals),
        "amount_atomic": str(int(row["amount_atomic"])),
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


async def own_payment(d: Deps, who: Principal, payment_id: str):
    """The payment row if the caller may see it; anything else (bad id, other tenant, for an agent another
    principal's payment) is a 404, so ids reveal nothing."""
    try:
        pid = uuid.UUID(payment_id)
    except ValueError:
        raise ApiError(404, "not_found", "payment not found") from None
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        row = (
            (await conn.execute(sa.select(payments).where(payments.c.id == pid, payments.c.tenant_id == who.tenant_id)))
            .mappings()
            .first()
        )
    if row is None or (who.is_agent and row["requested_by"] != who.user_id):
        raise ApiError(404, "not_found", "payment not found")
    return row


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
