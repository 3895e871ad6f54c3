"""Approvals over HTTP: list what the caller may act on, read one, and decide (approve, reject, revoke, cancel,
delegate, and the initiator's edit of a payment awaiting approval).

The workflow decides; this layer only says who is asking (the API key's user is the actor, never a body field),
through which channel, and under which request id (the Idempotency-Key, so a retried request is answered once).
The state comes from the workflow's `state` Query, the list from the `approvals` table its activity keeps.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from temporalio.service import RPCError, RPCStatusCode

from api import cursor as cursors
from api.approval_http import (
    HASH_PATTERN,
    attest,
    awaits,
    channel,
    check_approval_id,
    idempotency_key,
    refusal_response,
    row_json,
    update_id,
    view_json,
)
from api.authz import Role, allow, not_found, oversees, takes_part
from api.deps import Deps, deps
from api.errors import ApiError
from api.payment_service import readable_payment
from api.routes import approval_policies
from paygent.db.accounts import Principal, find_user
from paygent.db.schema import approvals, wallets
from paygent.domain.approval_state import NOT_FOUND, ApprovalStatus
from paygent.domain.channels import Channel
from paygent.domain.errors import InvalidInput
from paygent.domain.money import parse_amount
from paygent.domain.text import SafeText
from paygent.payment_input import DecimalText, check_recipient
from workflows.approval_client import ApprovalBusy, DecisionRefused, get_state, send_decision
from workflows.approval_types import (
    ApprovalView,
    ApproveRequest,
    CancelRequest,
    Decision,
    DelegateRequest,
    EditRequest,
    RejectRequest,
    RevokeRequest,
)

router = APIRouter(tags=["approvals"])
# Who may: read approvals (the people involved, and auditors); decide (approvers); cancel an approval (its
# initiator or an approver of its tier); edit a payment awaiting approval (its initiator). The workflow then
# checks the person (self-approval, tier membership, initiator).
READ = allow(Role.requester, Role.approver, Role.admin, Role.auditor)
APPROVER = allow(Role.approver)
INITIATOR = allow(Role.requester, Role.approver)
EDITOR = allow(Role.requester)
router.include_router(approval_policies.router)
# What `channel` (api.approval_http) answers: one of CLAIMABLE; the request types also take `temporal`.
HttpChannel = Literal[Channel.api, Channel.cli]
# `timelocked` is the spelling before issue 10 (see paygent.domain.approval_state.LEGACY_TIME_LOCKED): still accepted
StatusFilter = Literal["pending", "time_locked", "timelocked", "approved", "rejected", "expired", "cancelled", "all"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an "approver" or "actor" field is refused: the key says who
    reason: SafeText | None = Field(None, max_length=1000)


class ApproveBody(_Body):
    operation_hash: SafeText = Field(pattern=HASH_PATTERN, description="the hash of the exact operation approved")
    on_behalf_of: SafeText | None = Field(None, max_length=200, description="only when delegated by several")


class DecisionBody(_Body):
    operation_hash: SafeText | None = Field(None, pattern=HASH_PATTERN)


class DelegateBody(_Body):
    delegate: SafeText = Field(min_length=1, max_length=200, description="a user of the same tenant")
    until: AwareDatetime = Field(description="ISO 8601 with a time zone, e.g. 2026-12-01T00:00:00Z")


async def approval_or_404(d: Deps, who: Principal, approval_id: str) -> ApprovalView:
    """The approval's state if it belongs to the caller's tenant; another tenant's looks exactly like none."""
    check_approval_id(approval_id)
    try:
        view = await get_state(d.temporal, approval_id)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", "approval not found") from None
        raise
    if view.tenant_id != str(who.tenant_id):
        raise ApiError(404, "not_found", "approval not found")
    return view


async def readable_approval(d: Deps, who: Principal, approval_id: str) -> ApprovalView:
    """The approval's state if the caller may read it: admins and auditors, and the people it lists (the rule
    `GET /v1/approvals` filters by, plus its delegates and whoever acted on it). Anyone else gets the 404 of an
    approval that does not exist."""
    view = await approval_or_404(d, who, approval_id)
    if oversees(who) or takes_part(
        who,
        [view.initiator],
        view.tier.approvers,
        view.approved_by,
        view.awaiting,
        [a.approver for a in view.approvals],
        [g.delegate for g in view.delegations],
    ):
        return view
    raise not_found("approval")


async def decide(
    d: Deps,
    who: Principal,
    approval_id: str,
    decision: Decision,
    request: BaseModel,
    key: str | None,
):
    """Sends the decision as an Update; a refusal becomes 403/409/422 with the workflow's reason and type.

    The tenant travels in the request: the Update's validator compares it with the approval's own state, so another
    tenant's approval answers 404 like a missing one, with no database read and nothing written to history.
    """
    check_approval_id(approval_id)
    request_id = update_id(who, decision, key) or str(uuid.uuid4())
    request = attest(request, d.settings, approval_id=approval_id, decision=decision, request_id=request_id)
    request = request.model_copy(update={"tenant_id": str(who.tenant_id)})
    try:
        result = await send_decision(d.temporal, approval_id, decision, request, request_id=request_id)
    except DecisionRefused as exc:
        if exc.type == NOT_FOUND:
            raise ApiError(404, "not_found", "approval not found") from None
        return refusal_response(exc)
    except ApprovalBusy as exc:  # nothing decided: the same request (same Idempotency-Key) may be sent again
        raise ApiError(503, "approval_busy", str(exc), headers={"Retry-After": "1"}) from None
    return {"approval_id": approval_id, **result.model_dump(mode="json")}


@router.get("/v1/approvals")
async def list_approvals(
    status: StatusFilter = "pending",
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
    who: Principal = Depends(READ),
    d: Deps = Depends(deps),
):
    """`pending`: what the caller may approve now (as a tier approver or a live delegate). Other statuses (and
    `all`): approvals the caller is part of (initiator, approver, delegate); admins and auditors see them all.
    Newest first; a page may hold fewer than `limit` items (an ended delegation drops out), so follow
    `next_cursor` until it is null."""
    name = who.name
    where = [approvals.c.tenant_id == who.tenant_id]
    if status == ApprovalStatus.pending:
        where += [approvals.c.status == str(ApprovalStatus.pending), sa.literal(name) == sa.any_(approvals.c.awaiting)]
    else:
        if status != "all":
            where.append(approvals.c.status == str(ApprovalStatus(status)))
        if not oversees(who):  # admins and auditors see every approval of the tenant
            where.append(
                sa.or_(
                    approvals.c.initiator == name,
                    sa.literal(name) == sa.any_(approvals.c.approvers),
                    sa.literal(name) == sa.any_(approvals.c.approved_by),
                    sa.literal(name) == sa.any_(approvals.c.awaiting),
                )
            )
    if cursor:
        at, after = cursors.decode(cursor)
        where.append(sa.tuple_(approvals.c.created_at, approvals.c.id) < sa.tuple_(sa.literal(at), sa.literal(after)))
    async with d.engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    sa.select(approvals)
                    .where(*where)
                    .order_by(approvals.c.created_at.desc(), approvals.c.id.desc())
                    .limit(limit + 1)
                )
            )
            .mappings()
            .all()
        )
    more, rows = len(rows) > limit, rows[:limit]
    decimals = d.settings.token_decimals
    items = []
    for row in rows:
        if (
            status == ApprovalStatus.pending and name not in row["approvers"]
        ):  # only a delegate: is the delegation still live?
            try:
                if not awaits(await get_state(d.temporal, row["id"]), name, datetime.now(UTC)):
                    continue
            except RPCError:
                continue
        items.append(row_json(row, decimals))
    next_cursor = cursors.encode(rows[-1]["created_at"], rows[-1]["id"]) if more and rows else None
    return {"items": items, "next_cursor": next_cursor}


@router.get("/v1/approvals/{approval_id}")
async def get_approval(approval_id: str, who: Principal = Depends(READ), d: Deps = Depends(deps)):
    view = await readable_approval(d, who, approval_id)
    mine = awaits(view, who.name, datetime.now(UTC))
    return {**view_json(view, d.settings.token_decimals), "you_may_approve": mine}


@router.post("/v1/approvals/{approval_id}/approve")
async def approve(
    approval_id: str,
    body: ApproveBody,
    who: Principal = Depends(APPROVER),
    d: Deps = Depends(deps),
    via: HttpChannel = Depends(channel),
    key: str | None = Depends(idempotency_key),
):
    request = ApproveRequest(
        actor=who.name,
        channel=via,
        reason=body.reason,
        operation_hash=body.operation_hash,
        on_behalf_of=body.on_behalf_of,
    )
    return await decide(d, who, approval_id, Decision.approve, request, key)


@router.post("/v1/approvals/{approval_id}/reject")
async def reject(
    approval_id: str,
    body: DecisionBody | None = None,
    who: Principal = Depends(APPROVER),
    d: Deps = Depends(deps),
    via: HttpChannel = Depends(channel),
    key: str | None = Depends(idempotency_key),
):
    body = body or DecisionBody()
    request = RejectRequest(actor=who.name, channel=via, reason=body.reason, operation_hash=body.operation_hash)
    return await decide(d, who, approval_id, Decision.reject, request, key)


@router.post("/v1/approvals/{approval_id}/revoke")
async def revoke(
    approval_id: str,
    body: DecisionBody | None = None,
    who: Principal = Depends(APPROVER),
    d: Deps = Depends(deps),
    via: HttpChannel = Depends(channel),
    key: str | None = Depends(idempotency_key),
):
    body = body or DecisionBody()
    request = RevokeRequest(actor=who.name, channel=via, reason=body.reason, operation_hash=body.operation_hash)
    return await decide(d, who, approval_id, Decision.revoke, request, key)


@router.post("/v1/approvals/{approval_id}/cancel")
async def cancel(
    approval_id: str,
    body: DecisionBody | None = None,
    who: Principal = Depends(INITIATOR),
    d: Deps = Depends(deps),
    via: HttpChannel = Depends(channel),
    key: str | None = Depends(idempotency_key),
):
    body = body or DecisionBody()
    request = CancelRequest(actor=who.name, channel=via, reason=body.reason, operation_hash=body.operation_hash)
    return await decide(d, who, approval_id, Decision.cancel, request, key)


@router.post("/v1/approvals/{approval_id}/delegate")
async def delegate(
    approval_id: str,
    body: DelegateBody,
    who: Principal = Depends(APPROVER),
    d: Deps = Depends(deps),
    via: HttpChannel = Depends(channel),
    key: str | None = Depends(idempotency_key),
):
    if body.until <= datetime.now(UTC):
        raise InvalidInput("until", f"{body.until.isoformat()} is not in the future")
    async with d.engine.connect() as conn:
        if await find_user(conn, who.tenant_id, body.delegate) is None:
            raise InvalidInput("delegate", f"no user {body.delegate!r} in this tenant")
    request = DelegateRequest(actor=who.name, channel=via, reason=body.reason, delegate=body.delegate, until=body.until)
    return await decide(d, who, approval_id, Decision.delegate, request, key)


class EditBody(_Body):
    """Fields left out stay as they are; `"memo": null` clears the memo."""

    operation_hash: SafeText = Field(pattern=HASH_PATTERN, description="the version being edited")
    amount: DecimalText | None = Field(None, description="decimal string in token units")
    to: SafeText | None = None
    memo: SafeText | None = Field(None, max_length=1000)


@router.post("/v1/payments/{payment_id}/edit")
async def edit_payment(
    payment_id: str,
    body: EditBody,
    who: Principal = Depends(EDITOR),
    d: Deps = Depends(deps),
    via: HttpChannel = Depends(channel),
    key: str | None = Depends(idempotency_key),
):
    """The initiator changes a payment awaiting approval: every approval is cleared and the tier chosen again."""
    row = await readable_payment(d, who, payment_id)  # someone else's payment is a 404, as for a read
    pid = row["id"]
    async with d.engine.connect() as conn:
        payer: str = await conn.scalar(sa.select(wallets.c.address).where(wallets.c.id == row["wallet_id"])) or ""
    decimals = d.settings.unit_of(row["asset"]).decimals  # the payment's own asset
    amount_atomic = parse_amount(body.amount, decimals) if body.amount is not None else None
    to = None
    if body.to is not None:  # the same recipient rules as a new payment
        to = check_recipient(body.to, payer=payer, token_address=row["token_address"])
    if body.amount is None and body.to is None and "memo" not in body.model_fields_set:
        raise InvalidInput("body", "an edit changes at least one of amount, to, memo")
    try:
        await approval_or_404(d, who, str(pid))
    except ApiError as exc:  # the payment is the caller's tenant's, so "not found" means no approval was started
        raise ApiError(
            409, "not_awaiting_approval", f"payment is {row['status']}: only a payment awaiting approval can be edited"
        ) from exc
    request = EditRequest(
        actor=who.name,
        channel=via,
        reason=body.reason,
        operation_hash=body.operation_hash,
        amount_atomic=amount_atomic,
        to=to,
        memo=body.memo,
        clear_memo="memo" in body.model_fields_set and body.memo is None,
    )
    answer = await decide(d, who, str(pid), Decision.edit, request, key)
    return answer if not isinstance(answer, dict) else {"payment_id": str(pid), **answer}
