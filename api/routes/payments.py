"""POST /v1/payments starts a PaymentWorkflow exactly once per (tenant, Idempotency-Key); GET reads it back."""

from __future__ import annotations

import hashlib
import json
import uuid

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.dialects.postgresql import insert as pg_insert
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from api.deps import Deps, deps, principal
from api.errors import ApiError
from paygent.db.accounts import Principal, get_wallet
from paygent.db.audit import append_audit
from paygent.db.schema import payments
from paygent.domain.addresses import parse_address
from paygent.domain.errors import InvalidInput
from paygent.domain.money import format_amount, parse_amount
from paygent.settings import Settings
from workflows import payment_types as t
from workflows import search_attributes as sattr

router = APIRouter(prefix="/v1/payments", tags=["payments"])
PAYMENT_NAMESPACE = uuid.UUID("6f1c2a52-8f0e-4d7e-9a55-0c1b5e1d2a10")


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wallet_id: str = Field(description="The paying wallet's id")
    to: str = Field(description="Recipient address, 0x-prefixed")
    amount: str = Field(description="Decimal string in token units, e.g. \"12.50\"")
    asset: str = Field(description="Token symbol, e.g. USDC")
    memo: str | None = Field(None, max_length=500)


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
    }


@router.post("", status_code=202)
async def create_payment(body: PaymentCreate, who: Principal = Depends(principal), d: Deps = Depends(deps),
                         idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    if not idempotency_key or len(idempotency_key) > 200:
        raise ApiError(400, "invalid_input", "Idempotency-Key: a header of 1-200 characters is required",
                       "Idempotency-Key")
    token_address, decimals = resolve_asset(d.settings, body.asset)
    amount_atomic = parse_amount(body.amount, decimals)
    to = parse_address(body.to, field="to")
    try:
        wallet_id = uuid.UUID(body.wallet_id)
    except ValueError:
        raise InvalidInput("wallet_id", "must be a UUID") from None

    payment_id = uuid.uuid5(PAYMENT_NAMESPACE, f"{who.tenant_id}:{idempotency_key}")
    workflow_id = t.payment_workflow_id(str(payment_id))
    request_hash = hashlib.sha256(json.dumps(
        {"wallet_id": str(wallet_id), "to": to, "amount_atomic": amount_atomic, "asset": body.asset,
         "memo": body.memo}, sort_keys=True).encode()).hexdigest()

    async with d.engine.begin() as conn:
        wallet = await get_wallet(conn, who.tenant_id, wallet_id)
        if wallet is None:  # another tenant's wallet looks exactly like a missing one
            raise InvalidInput("wallet_id", "no such wallet")
        inserted = await conn.scalar(pg_insert(payments).values(
            id=payment_id, tenant_id=who.tenant_id, wallet_id=wallet_id, requested_by=who.user_id,
            idempotency_key=idempotency_key, request_hash=request_hash, kind="transfer",
            chain_id=d.settings.chain_id, asset=body.asset, token_address=token_address, to_address=to,
            amount_atomic=amount_atomic, memo=body.memo, status=t.PENDING, workflow_id=workflow_id,
        ).on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"]).returning(payments.c.id))
        if inserted is not None:
            await append_audit(conn, tenant_id=who.tenant_id, actor=who.name, channel="api",
                               action="payment.requested", subject_type="payment", subject_id=str(payment_id),
                               data={"to": to, "amount_atomic": str(amount_atomic), "asset": body.asset,
                                     "wallet_id": str(wallet_id), "memo": body.memo})
        row = (await conn.execute(sa.select(payments).where(payments.c.id == payment_id))).mappings().one()
    if row["request_hash"] != request_hash:
        raise ApiError(409, "idempotency_conflict",
                       "Idempotency-Key: already used for a different request", "Idempotency-Key")

    request = t.PaymentRequest(
        payment_id=str(payment_id), tenant_id=str(who.tenant_id), wallet_id=str(wallet_id),
        wallet_address=wallet.address, requested_by=who.name, requested_by_id=str(who.user_id),
        chain_id=d.settings.chain_id, asset=body.asset, decimals=decimals, token_address=token_address,
        to=to, amount_atomic=amount_atomic, memo=body.memo,
    )
    await start_payment_workflow(d, request, wallet.name)
    return JSONResponse({"id": str(payment_id), "status": row["status"], "workflow_id": workflow_id},
                        status_code=202)


async def start_payment_workflow(d: Deps, req: t.PaymentRequest, wallet_name: str) -> WorkflowHandle:
    """Start, or join the one already running: a retried request never starts a second workflow."""
    label = f"{format_amount(req.amount_atomic, req.decimals)} {req.asset}"
    try:
        return await d.temporal.start_workflow(
            t.WORKFLOW_NAME, req, id=t.payment_workflow_id(req.payment_id), task_queue=d.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(sattr.STATUS, t.PENDING), SearchAttributePair(sattr.TENANT, req.tenant_id),
                SearchAttributePair(sattr.KIND, "transfer"), SearchAttributePair(sattr.ASSET, req.asset),
                SearchAttributePair(sattr.AMOUNT, min(req.amount_atomic, 2**63 - 1)),
            ]),
            static_summary=f"Pay {label} from {wallet_name} to {req.to}",
            static_details=f"Requested by {req.requested_by}. Memo: {req.memo or '-'}. Payment {req.payment_id}.",
        )
    except WorkflowAlreadyStartedError:  # it ran and closed already: the same payment, nothing to start
        return d.temporal.get_workflow_handle(t.payment_workflow_id(req.payment_id))


@router.get("/{payment_id}")
async def get_payment(payment_id: str, who: Principal = Depends(principal), d: Deps = Depends(deps)):
    try:
        pid = uuid.UUID(payment_id)
    except ValueError:
        raise ApiError(404, "not_found", "payment not found") from None
    async with d.engine.connect() as conn:
        row = (await conn.execute(sa.select(payments).where(
            payments.c.id == pid, payments.c.tenant_id == who.tenant_id))).mappings().first()
    if row is None:
        raise ApiError(404, "not_found", "payment not found")
    return payment_view(row, d.settings)


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=500)


@router.post("/{payment_id}/cancel")
async def cancel_payment(payment_id: str, body: CancelBody | None = None, who: Principal = Depends(principal),
                         d: Deps = Depends(deps),
                         request_id: str | None = Header(None, alias="Idempotency-Key")):
    """Before signing: `cancelled`, reservation released. After: 409 with the reason."""
    try:
        pid = uuid.UUID(payment_id)
    except ValueError:
        raise ApiError(404, "not_found", "payment not found") from None
    async with d.engine.connect() as conn:
        row = (await conn.execute(sa.select(payments).where(
            payments.c.id == pid, payments.c.tenant_id == who.tenant_id))).mappings().first()
    if row is None:
        raise ApiError(404, "not_found", "payment not found")
    if row["requested_by"] != who.user_id and not who.has_role("admin"):
        raise ApiError(403, "forbidden", "only the requester or an admin may cancel a payment")
    if row["status"] in t.TERMINAL:
        raise ApiError(409, "not_cancellable", f"payment is already {row['status']}")
    handle = d.temporal.get_workflow_handle(row["workflow_id"])
    try:
        state = await handle.execute_update(
            "cancel", t.CancelRequest(actor=who.name, channel="api", reason=body.reason if body else None),
            id=request_id or None, result_type=t.PaymentState)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == "PaymentNotCancellable":
            raise ApiError(409, "not_cancellable", cause.message) from None
        raise
    return {"id": payment_id, "status": state.status, "failure_reason": state.failure_reason}
