"""HTTP edge of approvals, shared by the approval and policy routes: who is asking through which channel, how a
workflow refusal becomes an HTTP answer, and how an approval is shown (amounts as decimal strings).

Why a module of its own: the refusal mapping is a contract (403 for "not you", 409 for "not now", 422 for "not
like that") that the CLI relies on to explain refusals; keeping it in one place keeps every route consistent.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi import Header
from fastapi.responses import JSONResponse

from api.errors import ApiError, error_body
from paygent.crypto import channel_attestation
from paygent.db.accounts import Principal
from paygent.domain import approval_rules as rules
from paygent.domain.approval_state import ApprovalStatus
from paygent.domain.channels import CLAIMABLE, Channel
from paygent.domain.money import format_amount
from paygent.settings import Settings
from workflows.approval_client import DecisionRefused
from workflows.approval_types import ApprovalView

HASH_PATTERN = r"^0x[0-9a-fA-F]{64}$"
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")

# Refused because of who is asking -> 403; because the request itself is malformed -> 422; otherwise the
# approval is not in a state that allows it (closed, stale, threshold met, nothing to revoke...) -> 409.
_FORBIDDEN = {rules.SELF, rules.NOT_APPROVER, rules.NOT_INITIATOR, rules.NOT_ALLOWED, rules.DELEGATION_ENDED}


def channel(x_paygent_channel: str | None = Header(None, alias="X-Paygent-Channel")) -> Channel:
    """The audit channel: "api" unless the caller says it is the CLI; anything else is refused, not guessed."""
    if x_paygent_channel is None:
        return Channel.api
    value = x_paygent_channel.strip().lower()
    if value not in CLAIMABLE:  # `temporal` is the channel of Signals sent with Temporal's own tools, never of HTTP
        raise ApiError(
            422,
            "invalid_input",
            f"X-Paygent-Channel: must be one of {', '.join(CLAIMABLE)}, not {x_paygent_channel!r}",
            "X-Paygent-Channel",
        )
    return Channel(value)


def idempotency_key(key: str | None = Header(None, alias="Idempotency-Key")) -> str | None:
    if key is not None and not (1 <= len(key) <= 200):
        raise ApiError(422, "invalid_input", "Idempotency-Key: must be 1-200 characters", "Idempotency-Key")
    return key


def update_id(who: Principal, decision: str, key: str | None) -> str | None:
    """The Update id for a decision: the caller's Idempotency-Key, scoped by caller and decision.

    Temporal deduplicates Updates by id per workflow run. Unscoped, carol reusing bob's key "1" would get bob's
    cached answer and never be counted; scoped, a retry by the same caller of the same decision is answered once.
    """
    return None if key is None else f"{decision}:{who.user_id}:{key}"


def attest(request: Any, settings: Settings, *, approval_id: str, decision: str, request_id: str) -> Any:
    """Stamp a decision with the API's attestation: only then does the audit log record its channel (api or cli).

    The same decision sent straight to Temporal (an Update or a Signal) is audited with channel `temporal`.
    """
    token = channel_attestation(
        settings.master_key_bytes(),
        approval_id=approval_id,
        decision=decision,
        actor=request.actor,
        channel=request.channel,
        request_id=request_id,
    )
    return request.model_copy(update={"attestation": token})


def check_approval_id(approval_id: str) -> str:
    if not _ID.match(approval_id):
        raise ApiError(404, "not_found", "approval not found")
    return approval_id


def awaits(view: ApprovalView, name: str, now: datetime) -> bool:
    """Whether `name` may approve now, judged at the real time `now`.

    The Query's `awaiting` is computed at the workflow's clock, which only moves when the workflow runs: a
    delegation that ended since its last task would still look live. Same rule as `ApprovalState.awaiting`.
    """
    if view.status != ApprovalStatus.pending or any(a.approver == name for a in view.approvals):
        return False
    open_members = [m for m in view.tier.approvers if m != view.initiator and m not in view.approved_by]
    return name in open_members or any(
        d.delegate == name and d.delegator in open_members and d.until > now for d in view.delegations
    )


def refusal_response(exc: DecisionRefused) -> JSONResponse:
    """The workflow's own reason and refusal type, so a human (or the CLI) can act on it."""
    status = 403 if exc.type in _FORBIDDEN else 422 if exc.type == rules.INVALID else 409
    body = error_body(_snake(exc.type), exc.reason)
    body["error"]["type"] = exc.type
    return JSONResponse(body, status_code=status)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def amount_fields(atomic: int, decimals: int) -> dict[str, str]:
    return {"amount": format_amount(atomic, decimals), "amount_atomic": str(atomic)}


def view_json(view: ApprovalView, decimals: int) -> dict[str, Any]:
    """The Query's state with amounts as decimal strings (JSON numbers lose precision above 2**53)."""
    out = view.model_dump(mode="json")
    op = out["operation"]
    op.update(amount_fields(view.operation.amount_atomic, decimals))
    out["payment_id"] = view.operation.payment_id
    tier = out["tier"]
    bound = view.tier.max_amount_atomic
    tier["max_amount"] = None if bound is None else format_amount(bound, decimals)
    tier["max_amount_atomic"] = None if bound is None else str(bound)
    tier["describe"] = view.tier.describe()
    return out


def row_json(row: Any, decimals: int) -> dict[str, Any]:
    """One `approvals` table row: what a list shows (the Query has the full state)."""
    op = row["operation"]

    def when(v):
        return None if v is None else v.isoformat()

    return {
        "approval_id": row["id"],
        "payment_id": row["payment_id"],
        "workflow_id": row["workflow_id"],
        "status": row["status"],
        "initiator": row["initiator"],
        **amount_fields(int(row["amount_atomic"]), decimals),
        "asset": op.get("asset"),
        "to": op.get("to"),
        "wallet_id": op.get("wallet_id"),
        "memo": op.get("memo"),
        "operation_hash": row["operation_hash"],
        "approvals_had": row["approvals_had"],
        "approvals_needed": row["approvals_needed"],
        "approvers": list(row["approvers"]),
        "approved_by": list(row["approved_by"]),
        "awaiting": list(row["awaiting"]),
        "expires_at": when(row["expires_at"]),
        "timelock_until": when(row["timelock_until"]),
        "decided_by": row["decided_by"],
        "reason": row["reason"],
        "created_at": when(row["created_at"]),
        "updated_at": when(row["updated_at"]),
    }
