"""Quoting and starting swaps for the HTTP routes (api/routes/swaps.py) and the MCP tools.

A swap is recorded like a payment (paygent/db/payments.py `record_payment`: kind `swap`, asset and amount = the
input, `to` = the router, its terms in `details.swap`), once per (tenant, principal, Idempotency-Key), then a
SwapWorkflow is started (or joined) under the payment's workflow id. The caller needs the requester role (agents
too) and a `spend` grant on the wallet, for a quote as for a swap; bad input is a 422 naming the field and
nothing is recorded or started.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.authz import not_found, spendable_wallet
from api.deps import Deps
from api.errors import ApiError
from api.payment_service import readable_payment, record_once
from paygent import search_attributes as sattr
from paygent.db.accounts import Principal
from paygent.db.payments import payment_request
from paygent.db.tenancy import tenant_transaction
from paygent.domain.channels import Channel
from paygent.domain.errors import InvalidInput
from paygent.domain.money import format_amount, format_money
from paygent.domain.payment import PaymentKind, PaymentStatus, payment_workflow_id
from paygent.payment_input import AssetUnavailable
from paygent.swap_input import SwapInput, check_swap_input, quote_swap
from paygent.swap_terms import quote_view, swap_request_fields, swap_terms
from workflows import swap_types as sw


@dataclass(frozen=True)
class SwapSpec:
    wallet_id: str
    from_asset: str
    to_asset: str
    amount: object
    slippage_bps: object = None
    memo: str | None = None


def _wallet_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidInput("wallet_id", "must be a UUID") from None


def _checked(d: Deps, spec: SwapSpec) -> SwapInput:
    try:
        return check_swap_input(d.settings, spec.from_asset, spec.to_asset, spec.amount, spec.slippage_bps)
    except AssetUnavailable as exc:
        raise ApiError(503, "swap_unavailable", str(exc), exc.field) from None


async def quote(d: Deps, who: Principal, spec: SwapSpec) -> dict:
    """A read: the wallet's grant checked, the input checked, the router asked; nothing reserved or recorded."""
    wallet_id = _wallet_uuid(spec.wallet_id)
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        await spendable_wallet(conn, who, wallet_id)
    checked = _checked(d, spec)
    return quote_view(checked, await quote_swap(d.w3, d.settings, checked))


async def start_swap(d: Deps, who: Principal, spec: SwapSpec, idempotency_key: str, *, channel: Channel):
    """Check the grant and the input, quote (a missing pool or a guard refuses here with 422), record once, start
    (or join) the SwapWorkflow. Returns (row, quote view)."""
    wallet_id = _wallet_uuid(spec.wallet_id)
    checked = _checked(d, spec)
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        wallet = await spendable_wallet(conn, who, wallet_id)
    q = await quote_swap(d.w3, d.settings, checked)
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        if d.admission is not None:
            await d.admission.admit()
        row = await record_once(
            conn,
            d,
            who,
            idempotency_key,
            channel=channel,
            wallet_id=wallet_id,
            asset=checked.asset_in.symbol,
            token_address=checked.asset_in.address,
            to=checked.router,
            amount_atomic=checked.amount_in,
            memo=spec.memo,
            kind=PaymentKind.swap,
            swap=swap_terms(checked, q),
        )
    req = swap_request(d, row, wallet.address, who.actor, checked)
    await start_swap_workflow(d, req, wallet.name, quote_view(checked, q)["text"])
    return row, quote_view(checked, q)


def swap_request(d: Deps, row, wallet_address: str, actor: str, checked: SwapInput) -> sw.SwapRequest:
    return sw.SwapRequest(
        payment=payment_request(row, wallet_address, requested_by=actor, decimals=checked.asset_in.decimals),
        **swap_request_fields((row["details"] or {}).get("swap") or {}, d.settings),
    )


async def start_swap_workflow(d: Deps, req: sw.SwapRequest, wallet_name: str, summary: str) -> None:
    pay = req.payment
    amount_text = format_money(pay.amount_atomic, pay.decimals, pay.asset)
    try:
        await d.temporal.start_workflow(
            sw.WORKFLOW_NAME,
            req,
            id=payment_workflow_id(pay.payment_id),
            task_queue=d.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sattr.STATUS, str(PaymentStatus.pending)),
                    SearchAttributePair(sattr.TENANT, pay.tenant_id),
                    SearchAttributePair(sattr.KIND, str(PaymentKind.swap)),
                    SearchAttributePair(sattr.ASSET, pay.asset),
                    SearchAttributePair(sattr.AMOUNT, min(pay.amount_atomic, sattr.INT64_MAX)),
                    SearchAttributePair(sattr.AMOUNT_TEXT, amount_text),
                ]
            ),
            static_summary=summary,
            static_details=f"From wallet {wallet_name}. Requested by {pay.requested_by}. Swap {pay.payment_id}.",
        )
    except WorkflowAlreadyStartedError:
        pass


def swap_view(row, settings) -> dict:
    """GET /v1/swaps/{id}: status, amounts (the real output once settled), transaction and reason."""
    terms = (row["details"] or {}).get("swap") or {}
    dec_out = int(terms.get("decimals_out", 6))
    dec_in = int(terms.get("decimals_in", settings.token_decimals))

    def amount(key: str, decimals: int) -> str | None:
        return format_amount(int(terms[key]), decimals) if terms.get(key) is not None else None

    return {
        "id": str(row["id"]),
        "kind": row["kind"],
        "status": row["status"],
        "wallet_id": str(row["wallet_id"]),
        "from_asset": row["asset"],
        "to_asset": terms.get("to_asset"),
        "amount_in": format_amount(int(row["amount_atomic"]), dec_in),
        "amount_in_atomic": str(int(row["amount_atomic"])),
        "quoted_amount_out": amount("quoted_amount_out", dec_out),
        "min_amount_out": amount("min_amount_out", dec_out),
        "min_amount_out_atomic": terms.get("min_amount_out"),
        "amount_out": amount("amount_out", dec_out),
        "amount_out_atomic": terms.get("amount_out"),
        "price_impact_bps": terms.get("price_impact_bps"),
        "slippage_bps": terms.get("slippage_bps"),
        "gas_used": terms.get("gas_used"),
        "router": terms.get("router"),
        "tx_hash": row["tx_hash"],
        "block_number": row["block_number"],
        "failure_reason": row["failure_reason"],
        "workflow_id": row["workflow_id"],
        "temporal_ui_url": f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{row['workflow_id']}",
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


async def readable_swap(d: Deps, who: Principal, swap_id: str):
    row = await readable_payment(d, who, swap_id)
    if row["kind"] != PaymentKind.swap:
        raise not_found("swap")
    return row
