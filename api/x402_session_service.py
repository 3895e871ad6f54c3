"""x402 spending sessions, one way for every door: the HTTP routes (api/routes/x402_sessions.py), the MCP tools
(api/mcp/x402_session_tools.py) and, through HTTP, the CLI.

Every function checks who may act before anything is recorded, started or signed: starting and fetching need
the requester role (or an agent key) and a `spend` grant on the session's wallet, held now; only the session's
own principal fetches with it; its owner or an admin ends it; its owner, admins and auditors read it.
Refusals are ApiError / InvalidInput naming the field and reason.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.common import WorkflowIDReusePolicy as Reuse
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.authz import Role, oversees, spendable_wallet
from api.deps import Deps
from api.errors import ApiError
from paygent import search_attributes as sattr
from paygent.db.accounts import Principal
from paygent.db.audit import append_audit
from paygent.db.schema import payments
from paygent.db.tenancy import tenant_transaction
from paygent.db.x402_sessions import load_session, record_session
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.errors import InvalidInput
from paygent.domain.money import format_amount, parse_amount
from paygent.domain.x402_session import (
    MAX_TTL_SECONDS,
    SESSION_FINAL,
    SESSION_WORKFLOW,
    RefusalReason,
    SessionStatus,
    origin,
    parse_origins,
    session_workflow_id,
)
from paygent.egress import require_allowed
from paygent.payment_input import resolve_asset
from workflows import x402_session_types as xs

SESSION_NAMESPACE = uuid.UUID("0d6a3c9e-51f4-4a0c-9a3e-8f3b2d7c1e55")
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
REFUSAL_STATUS = {
    RefusalReason.origin_not_allowed: 403,
    RefusalReason.session_not_active: 409,
    RefusalReason.session_expired: 410,
    RefusalReason.over_budget: 409,
    RefusalReason.over_ceiling: 409,
    RefusalReason.body_too_large: 413,
    RefusalReason.payment_refused: 422,
}


@dataclass(frozen=True)
class SessionSpec:
    wallet_id: str
    budget: str
    ttl_seconds: int
    origins: list[str]
    max_price: str | None = None


@dataclass(frozen=True)
class FetchSpec:
    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    body_encoding: str = "text"  # or "base64"
    max_amount: str | None = None


def _uuid(value: str, field_name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(field_name, "must be a UUID") from None


async def start_session(
    d: Deps, who: Principal, spec: SessionSpec, idempotency_key: str | None, *, channel: Channel
) -> dict[str, Any]:
    """Validate, check the wallet grant, record once, start (or join) the session; its state once opened."""
    _, token_address, decimals = resolve_asset(d.settings, d.settings.token_symbol)
    budget = parse_amount(spec.budget, decimals, field="budget")
    max_price = parse_amount(spec.max_price, decimals, field="max_price") if spec.max_price is not None else None
    if max_price is not None and max_price > budget:
        raise InvalidInput("max_price", "is above the budget")
    if not 1 <= spec.ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidInput("ttl_seconds", f"must be 1..{MAX_TTL_SECONDS}")
    origins = parse_origins(spec.origins)
    for allowed in origins:
        await require_allowed(d.settings, allowed + "/", field="origins")
    wallet_id = _uuid(spec.wallet_id, "wallet_id")
    key = idempotency_key or str(uuid.uuid4())
    session_id = uuid.uuid5(SESSION_NAMESPACE, f"{who.tenant_id}:{who.user_id}:{key}")
    expires_at = datetime.now(UTC) + timedelta(seconds=spec.ttl_seconds)
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        wallet = await spendable_wallet(conn, who, wallet_id)
        recorded = await record_session(
            conn,
            {
                "id": session_id,
                "tenant_id": who.tenant_id,
                "wallet_id": wallet_id,
                "requested_by": who.user_id,
                "idempotency_key": key,
                "status": str(SessionStatus.pending),
                "asset": d.settings.token_symbol,
                "budget_atomic": budget,
                "max_price_atomic": max_price,
                "origins": origins,
                "expires_at": expires_at,
                "workflow_id": session_workflow_id(str(session_id)),
            },
        )
        row = recorded.row
        same = (
            row["wallet_id"] == wallet_id
            and int(row["budget_atomic"]) == budget
            and (None if row["max_price_atomic"] is None else int(row["max_price_atomic"])) == max_price
            and list(row["origins"]) == origins
        )
        if not same:
            raise ApiError(
                409, "idempotency_conflict", "Idempotency-Key: already used for a different session", "Idempotency-Key"
            )
        if recorded.created:
            await append_audit(
                conn,
                tenant_id=who.tenant_id,
                actor=who.actor,
                channel=channel,
                action=AuditAction.x402_session_requested,
                subject_type=AuditSubject.x402_session,
                subject_id=str(session_id),
                data={
                    "wallet_id": str(wallet_id),
                    "budget_atomic": str(budget),
                    "max_price_atomic": None if max_price is None else str(max_price),
                    "origins": origins,
                    "expires_at": expires_at.isoformat(),
                },
            )
    inp = xs.SessionInput(
        session_id=str(session_id),
        tenant_id=str(who.tenant_id),
        wallet_id=str(wallet_id),
        wallet_address=wallet.address,
        wallet_name=wallet.name,
        requested_by=who.actor,
        requested_by_id=str(who.user_id),
        chain_id=d.settings.chain_id,
        asset=d.settings.token_symbol,
        decimals=decimals,
        token_address=token_address,
        budget_atomic=budget,
        max_price_atomic=max_price,
        origins=list(row["origins"]),
        expires_at=row["expires_at"],
    )
    label = f"{format_amount(budget, decimals)} {inp.asset}"
    try:
        handle = await d.temporal.start_workflow(
            SESSION_WORKFLOW,
            inp,
            id=row["workflow_id"],
            task_queue=d.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=Reuse.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sattr.STATUS, str(SessionStatus.pending)),
                    SearchAttributePair(sattr.TENANT, str(who.tenant_id)),
                    SearchAttributePair(sattr.KIND, "x402_session"),
                    SearchAttributePair(sattr.ASSET, inp.asset),
                    SearchAttributePair(sattr.AMOUNT, min(budget, sattr.INT64_MAX)),
                ]
            ),
            static_summary=f"x402 session: budget {label} from {wallet.name} for {', '.join(origins)}",
            static_details=f"Requested by {who.actor}. Session {session_id}.",
        )
        await handle.execute_update(xs.UPDATE_OPENED, result_type=xs.SessionState)
    except (WorkflowAlreadyStartedError, RPCError):
        pass  # it ran and closed already: the same session; its row answers
    return await session_view(d, who, str(session_id))


async def own_session(d: Deps, who: Principal, session_id: str, *, act: bool = False):
    """The session row if the caller may see it (`act`: may fetch with it); else 404 (ids reveal nothing)."""
    try:
        sid = uuid.UUID(session_id)
    except ValueError:
        raise ApiError(404, "not_found", "x402 session not found") from None
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        row = await load_session(conn, sid)
    mine = row is not None and row["requested_by"] == who.user_id
    if row is None or not (mine or (oversees(who) and not act)):
        raise ApiError(404, "not_found", "x402 session not found")
    return row


async def session_view(d: Deps, who: Principal, session_id: str, row=None) -> dict[str, Any]:
    row = row or await own_session(d, who, session_id)
    decimals = d.settings.token_decimals
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        paid = (
            (
                await conn.execute(
                    sa.select(payments)
                    .where(payments.c.session_id == row["id"])
                    .order_by(payments.c.created_at, payments.c.id)
                )
            )
            .mappings()
            .all()
        )
    budget, spent, held = int(row["budget_atomic"]), int(row["spent_atomic"]), int(row["held_atomic"])
    details = row["details"] or {}
    max_price = row["max_price_atomic"]
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "wallet_id": str(row["wallet_id"]),
        "asset": row["asset"],
        "budget": format_amount(budget, decimals),
        "max_price": None if max_price is None else format_amount(int(max_price), decimals),
        "spent": format_amount(spent, decimals),
        "held": format_amount(held, decimals),
        "remaining": format_amount(0 if row["status"] in SESSION_FINAL else max(0, budget - spent - held), decimals),
        "origins": list(row["origins"]),
        "expires_at": row["expires_at"].isoformat(),
        "created_at": row["created_at"].isoformat(),
        "last_error": details.get("last_error"),
        "reason": details.get("reason"),
        "workflow_id": row["workflow_id"],
        "temporal_ui_url": f"{d.settings.temporal_ui_url}/namespaces/{d.settings.temporal_namespace}"
        f"/workflows/{row['workflow_id']}",
        "requests": [
            {
                "payment_id": str(p["id"]),
                "url": (p["details"] or {}).get("url"),
                "status": p["status"],
                "amount": format_amount(int(p["amount_atomic"]), decimals),
                "tx_hash": p["tx_hash"],
                "payment_identifier": (p["details"] or {}).get("payment_identifier"),
                "at": p["created_at"].isoformat(),
            }
            for p in paid
        ],
    }


def _content(spec: FetchSpec) -> str | None:
    if spec.body is None:
        return None
    if spec.body_encoding == "base64":
        try:
            return base64.b64encode(base64.b64decode(spec.body, validate=True)).decode()
        except (binascii.Error, ValueError):
            raise InvalidInput("body", "is not base64 (body_encoding is base64)") from None
    if spec.body_encoding != "text":
        raise InvalidInput("body_encoding", 'must be "text" or "base64"')
    return base64.b64encode(spec.body.encode()).decode()


async def session_fetch(
    d: Deps, who: Principal, session_id: str, spec: FetchSpec, idempotency_key: str | None, *, channel: Channel
) -> dict[str, Any]:
    """One paid request in the session (the `fetch` Update); refusals are 4xx naming the reason."""
    row = await own_session(d, who, session_id, act=True)
    method = spec.method.upper()
    if method not in METHODS:
        raise InvalidInput("method", f"one of {', '.join(sorted(METHODS))}")
    asked = origin(spec.url)  # the session's own rule first, before the URL is resolved; the workflow checks again
    if asked not in row["origins"]:
        raise ApiError(
            403,
            str(RefusalReason.origin_not_allowed),
            f"origin {asked} is not allowed in this session (allowed: {', '.join(row['origins'])})",
            "url",
        )
    await require_allowed(d.settings, spec.url, field="url")
    max_amount = (
        parse_amount(spec.max_amount, d.settings.token_decimals, field="max_amount")
        if spec.max_amount is not None
        else None
    )
    body = _content(spec)
    async with tenant_transaction(d.engine, who.tenant_id) as conn:  # the grant must still hold, now
        await spendable_wallet(conn, who, row["wallet_id"])
    key = idempotency_key or str(uuid.uuid4())
    payment_id = uuid.uuid5(SESSION_NAMESPACE, f"{row['id']}:{who.user_id}:{key}")
    request = xs.FetchRequest(
        payment_id=str(payment_id),
        url=spec.url,
        method=method,
        headers=dict(spec.headers),
        body_base64=body,
        max_amount_atomic=max_amount,
        actor=who.actor,
        channel=str(channel),
    )
    handle = d.temporal.get_workflow_handle(row["workflow_id"])
    try:
        result: xs.FetchResult = await handle.execute_update(
            xs.UPDATE_FETCH, request, id=str(payment_id), result_type=xs.FetchResult
        )
    except WorkflowUpdateFailedError as err:
        raise _refusal(err) from None
    except RPCError as err:  # the session's workflow has closed
        current = await own_session(d, who, session_id, act=True)
        raise ApiError(
            410 if current["status"] == SessionStatus.expired else 409,
            str(
                RefusalReason.session_expired
                if current["status"] == SessionStatus.expired
                else RefusalReason.session_not_active
            ),
            f"the session is {current['status']}: start a new one ({err.message})",
        ) from None
    return fetch_view(result, d.settings.token_decimals)


def _refusal(err: WorkflowUpdateFailedError) -> ApiError:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == xs.REFUSED and cause.details:
        refusal = xs.FetchRefusal.model_validate(cause.details[0])
        return ApiError(REFUSAL_STATUS[refusal.reason], str(refusal.reason), refusal.message, refusal.field)
    if isinstance(cause, ApplicationError) and cause.type == xs.UNSETTLED:
        return ApiError(502, "unsettled", cause.message, "url")
    message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
    return ApiError(502, "fetch_failed", f"the paid request failed: {message}", "url")


def fetch_view(result: xs.FetchResult, decimals: int) -> dict[str, Any]:
    paid = result.paid
    out: dict[str, Any] = {
        "status_code": result.status_code,
        "headers": result.headers,
        "body": result.body,
        "paid": None
        if paid is None
        else {
            "amount": format_amount(paid.amount_atomic, decimals),
            "payment_id": paid.payment_id,
            "tx_hash": paid.tx_hash,
        },
    }
    if result.body_encoding == "base64":
        out["body_encoding"] = "base64"
    if result.body_too_large:
        out["body"] = None
        out["error"] = {
            "code": "body_too_large",
            "field": "url",
            "message": "the paid answer is over 1 MiB and the server did not declare its size: it was paid for "
            "(see paid) but cannot be returned",
        }
    return out


async def end_session(d: Deps, who: Principal, session_id: str, *, channel: Channel, reason: str | None = None):
    """Close it (its owner or an admin); what is left is released. Answers the final state."""
    row = await own_session(d, who, session_id)
    if row["requested_by"] != who.user_id and not who.has_role(Role.admin):
        raise ApiError(403, "forbidden", "only the session's owner or an admin may end it")
    if row["status"] not in SESSION_FINAL:
        handle = d.temporal.get_workflow_handle(row["workflow_id"])
        try:
            await handle.execute_update(
                xs.UPDATE_CLOSE,
                xs.CloseRequest(actor=who.actor, channel=str(channel), reason=reason),
                result_type=xs.SessionState,
            )
        except RPCError:
            pass  # it ended meanwhile: the row has the final state
    return await session_view(d, who, session_id)
