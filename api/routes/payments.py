"""POST /v1/payments starts a PaymentWorkflow exactly once per (tenant, Idempotency-Key); GET reads it back."""

from __future__ import annotations

import hashlib
import json
import uuid

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from api.authz import Role, allow, spendable_wallet
from api.deps import Deps, deps
from api.errors import ApiError
from paygent.db.accounts import Principal
from paygent.db.audit import append_audit
from paygent.db.payment_history import status_history
from paygent.db.schema import payments
from paygent.db.tenancy import tenant_transaction
from paygent.domain.addresses import parse_address
from paygent.domain.errors import InvalidInput
from paygent.domain.money import format_amount, parse_amount
from paygent.domain.text import SafeText
from paygent.egress import require_allowed
from paygent.settings import Settings
from workflows import payment_types as t
from workflows import search_attributes as sattr

router = APIRouter(prefix="/v1/payments", tags=["payments"])
PAYMENT_NAMESPACE = uuid.UUID("6f1c2a52-8f0e-4d7e-9a55-0c1b5e1d2a10")


class PaymentCreate(BaseModel):
    """A token transfer (`kind` omitted or "transfer")."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["transfer"] = "transfer"
    wallet_id: SafeText = Field(description="The paying wallet's id")
    to: SafeText = Field(description="Recipient address, 0x-prefixed")
    amount: SafeText = Field(description="Decimal string in token units, e.g. \"12.50\"")
    asset: SafeText = Field(description="Token symbol, e.g. USDC")
    memo: SafeText | None = Field(None, max_length=500)


class X402PaymentCreate(BaseModel):
    """Fetch `url`, paying with x402 if the server asks, at most `max_amount` (token units)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["x402"]
    wallet_id: SafeText
    url: SafeText = Field(max_length=2000)
    max_amount: SafeText
    asset: SafeText = "USDC"
    memo: SafeText | None = Field(None, max_length=500)


def _kind(value) -> str:
    return (value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)) or "transfer"


PaymentBody = Annotated[Union[Annotated[PaymentCreate, Tag("transfer")], Annotated[X402PaymentCreate, Tag("x402")]],
                        Discriminator(_kind)]
ZERO_ADDRESS = "0x" + "0" * 40


def resolve_asset(settings: Settings, symbol: str) -> tuple[str, int]:
    if not settings.token_address:
        raise ApiError(503, "asset_unavailable", "asset: no token is configured on this server", "asset")
    if symbol != settings.token_symbol:
        raise InvalidInput("asset", f"unknown asset {symbol!r}; known: {settings.token_symbol}")
    return settings.token_address, settings.token_decimals


def payment_view(row, settings: Settings) -> dict:
    return {
        "id": str(row["id"]), "status": row["status"], "kind": row["kind"],
        "amount": format_amount(int(row["amount_atomic"]), settings.token_decimals),
        "amount_atomic": str(int(row["amount_atomic"])), "asset": row["asset"], "to": row["to_address"],
        "wallet_id": str(row["wallet_id"]), "memo": row["memo"], "tx_hash": row["tx_hash"],
        "block_number": row["block_number"], "failure_reason": row["failure_reason"],
        "workflow_id": row["workflow_id"],
        "temporal_ui_url": f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
                           f"/workflows/{row['workflow_id']}",
        "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat(),
        **({"x402": _x402_view(row["details"])} if row["kind"] == "x402" else {}),
    }


def _x402_view(details: dict) -> dict:
    """What the paid request did; never the signed authorization itself (whoever holds it could settle it)."""
    response = details.get("response") or {}
    signed = details.get("signed") or {}
    return {"url": details.get("url"), "outcome": details.get("outcome"), "refusal": details.get("refusal"),
            "authorization_valid_before": signed.get("valid_before"),
            "response_status": response.get("status"), "response_body_excerpt": response.get("body_excerpt"),
            "receipt": details.get("receipt")}


@router.post("", status_code=202)
async def create_payment(body: PaymentBody, who: Principal = Depends(allow(Role.requester, agents=True)),
                         d: Deps = Depends(deps),
                         idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    if not idempotency_key or len(idempotency_key) > 200:
        raise ApiError(400, "invalid_input", "Idempotency-Key: a header of 1-200 characters is required",
                       "Idempotency-Key")
    token_address, decimals = resolve_asset(d.settings, body.asset)
    if isinstance(body, X402PaymentCreate):
        amount_atomic = parse_amount(body.max_amount, decimals, field="max_amount")
        await require_allowed(d.settings, body.url, field="url")  # before anything is recorded or started
        to = ZERO_ADDRESS  # the server's 402 answer names the recipient; recorded once probed
    else:
        amount_atomic = parse_amount(body.amount, decimals)
        to = parse_address(body.to, field="to")
    try:
        wallet_id = uuid.UUID(body.wallet_id)
    except ValueError:
        raise InvalidInput("wallet_id", "must be a UUID") from None

    # the key is the caller's own: another principal's identical key makes another payment, and reveals nothing
    payment_id = uuid.uuid5(PAYMENT_NAMESPACE, f"{who.tenant_id}:{who.user_id}:{idempotency_key}")
    workflow_id = t.payment_workflow_id(str(payment_id))
    async with d.engine.begin() as conn:
        wallet = await spendable_wallet(conn, who, wallet_id)
        row, request_hash = await record_payment(
            conn, payment_id=payment_id, tenant_id=who.tenant_id, requested_by_id=who.user_id, actor=who.actor,
            channel="api", wallet_id=wallet_id, idempotency_key=idempotency_key, chain_id=d.settings.chain_id,
            asset=body.asset, token_address=token_address, to=to, amount_atomic=amount_atomic, memo=body.memo,
            kind=body.kind, url=getattr(body, "url", None))
    if row["request_hash"] != request_hash:
        raise ApiError(409, "idempotency_conflict",
                       "Idempotency-Key: already used for a different request", "Idempotency-Key")

    request = payment_request(row, wallet.address, requested_by=who.actor, decimals=decimals)
    await start_payment_workflow(d, request, wallet.name)
    return JSONResponse({"id": str(payment_id), "status": row["status"], "workflow_id": workflow_id},
                        status_code=202)


async def record_payment(conn: AsyncConnection, *, payment_id: uuid.UUID, tenant_id: uuid.UUID,
                         requested_by_id: uuid.UUID, actor: str, channel: str, wallet_id: uuid.UUID,
                         idempotency_key: str, chain_id: int, asset: str, token_address: str, to: str,
                         amount_atomic: int, memo: str | None, audit_extra: dict | None = None,
                         kind: str = "transfer", url: str | None = None):
    """Record a transfer once per (tenant, idempotency key), audited; returns (stored row, this request's hash).

    Shared by the API and agent runs (activities/agent_payments.py) so a payment is recorded one way. When
    the key was used before, the stored row is the first request's: a caller compares its `request_hash`.
    """
    request_hash = hashlib.sha256(json.dumps(
        {"wallet_id": str(wallet_id), "to": to, "amount_atomic": amount_atomic, "asset": asset,
         "memo": memo, **({"kind": kind, "url": url} if kind != "transfer" else {})},
        sort_keys=True).encode()).hexdigest()
    inserted = await conn.scalar(pg_insert(payments).values(
        id=payment_id, tenant_id=tenant_id, wallet_id=wallet_id, requested_by=requested_by_id,
        idempotency_key=idempotency_key, request_hash=request_hash, kind=kind,
        chain_id=chain_id, asset=asset, token_address=token_address, to_address=to,
        amount_atomic=amount_atomic, memo=memo, status=t.PENDING,
        workflow_id=t.payment_workflow_id(str(payment_id)), details={"url": url} if url else {},
    ).on_conflict_do_nothing(constraint="payments_idempotency_per_principal").returning(payments.c.id))
    if inserted is not None:
        await append_audit(conn, tenant_id=tenant_id, actor=actor, channel=channel,
                           action="payment.requested", subject_type="payment", subject_id=str(payment_id),
                           data={"to": to, "amount_atomic": str(amount_atomic), "asset": asset,
                                 "wallet_id": str(wallet_id), "memo": memo, **(audit_extra or {})})
    row = (await conn.execute(sa.select(payments).where(
        payments.c.tenant_id == tenant_id, payments.c.requested_by == requested_by_id,
        payments.c.idempotency_key == idempotency_key))).mappings().one()
    return row, request_hash


def payment_request(row, wallet_address: str, *, requested_by: str, decimals: int) -> t.PaymentRequest:
    """The workflow input for a recorded payment row."""
    return t.PaymentRequest(
        payment_id=str(row["id"]), tenant_id=str(row["tenant_id"]), wallet_id=str(row["wallet_id"]),
        wallet_address=wallet_address, requested_by=requested_by, requested_by_id=str(row["requested_by"]),
        chain_id=int(row["chain_id"]), asset=row["asset"], decimals=decimals, token_address=row["token_address"],
        to=row["to_address"], amount_atomic=int(row["amount_atomic"]), memo=row["memo"], kind=row["kind"],
        url=(row["details"] or {}).get("url"),
        max_amount_atomic=int(row["amount_atomic"]) if row["kind"] == "x402" else None,
    )


async def start_payment_workflow(d: Deps, req: t.PaymentRequest, wallet_name: str) -> WorkflowHandle:
    """Start, or join the one already running: a retried request never starts a second workflow."""
    label = f"{format_amount(req.amount_atomic, req.decimals)} {req.asset}"
    if req.kind == "x402":
        label = f"up to {label} for {req.url}"
    try:
        return await d.temporal.start_workflow(
            t.WORKFLOW_NAME, req, id=t.payment_workflow_id(req.payment_id), task_queue=d.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(sattr.STATUS, t.PENDING), SearchAttributePair(sattr.TENANT, req.tenant_id),
                SearchAttributePair(sattr.KIND, req.kind), SearchAttributePair(sattr.ASSET, req.asset),
                SearchAttributePair(sattr.AMOUNT, min(req.amount_atomic, 2**63 - 1)),
            ]),
            static_summary=f"Pay {label} from {wallet_name}" + ("" if req.kind == "x402" else f" to {req.to}"),
            static_details=f"Requested by {req.requested_by}. Memo: {req.memo or '-'}. Payment {req.payment_id}.",
        )
    except WorkflowAlreadyStartedError:  # it ran and closed already: the same payment, nothing to start
        return d.temporal.get_workflow_handle(t.payment_workflow_id(req.payment_id))


@router.get("/{payment_id}")
async def get_payment(payment_id: str, who: Principal = Depends(allow(*Role, agents=True)), d: Deps = Depends(deps)):
    row = await _own_payment(d, who, payment_id)
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        history = await status_history(conn, row["id"])
    return {**payment_view(row, d.settings), "status_history": history}


async def _own_payment(d: Deps, who: Principal, payment_id: str):
    """The payment row if the caller may see it; anything else (bad id, other tenant, for an agent another
    principal's payment) is a 404, so ids reveal nothing."""
    try:
        pid = uuid.UUID(payment_id)
    except ValueError:
        raise ApiError(404, "not_found", "payment not found") from None
    async with d.engine.connect() as conn:
        row = (await conn.execute(sa.select(payments).where(
            payments.c.id == pid, payments.c.tenant_id == who.tenant_id))).mappings().first()
    if row is None or (who.is_agent and row["requested_by"] != who.user_id):
        raise ApiError(404, "not_found", "payment not found")
    return row


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: SafeText | None = Field(None, max_length=500)


@router.post("/{payment_id}/cancel")
async def cancel_payment(payment_id: str, body: CancelBody | None = None,
                         who: Principal = Depends(allow(Role.requester, Role.admin, agents=True)),
                         d: Deps = Depends(deps),
                         request_id: str | None = Header(None, alias="Idempotency-Key")):
    """Before signing: `cancelled`, reservation released. After: 409 with the reason."""
    row = await _own_payment(d, who, payment_id)
    if row["requested_by"] != who.user_id and not who.has_role("admin"):
        raise ApiError(403, "forbidden", "only the requester or an admin may cancel a payment")
    if row["status"] in t.TERMINAL:
        raise ApiError(409, "not_cancellable", f"payment is already {row['status']}")
    handle = d.temporal.get_workflow_handle(row["workflow_id"])
    try:
        state = await handle.execute_update(
            "cancel", t.CancelRequest(actor=who.actor, channel="api", reason=body.reason if body else None),
            id=request_id or None, result_type=t.PaymentState)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == "PaymentNotCancellable":
            raise ApiError(409, "not_cancellable", cause.message) from None
        raise
    return {"id": payment_id, "status": state.status, "failure_reason": state.failure_reason}
