"""Maps each decision payload (Update or Signal) onto its pure rule in `paygent.domain.approval_rules`.

Kept apart from the workflow so the validator (on a copy of the state) and the handler (on the state itself) share
one mapping, and so the audit data each decision writes is defined in one place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paygent.domain import approval_rules as rules
from workflows.approval_types import Decision


def apply_decision(state: rules.ApprovalState, kind: Decision, req: Any, now: datetime) -> dict[str, Any] | None:
    """Runs one decision's rule on `state`; returns audit data, or None when it changed nothing (duplicate)."""
    if kind == Decision.approve:
        rec = rules.approve(
            state,
            actor=req.actor,
            operation_hash=req.operation_hash,
            on_behalf_of=req.on_behalf_of,
            channel=req.channel,
            now=now,
        )
        return None if rec is None else {"on_behalf_of": rec.on_behalf_of, "operation_hash": state.operation_hash}
    if kind == Decision.reject:
        rules.reject(state, actor=req.actor, operation_hash=req.operation_hash, reason=req.reason, now=now)
        return {"reason": state.reason}
    if kind == Decision.revoke:
        return {
            "revoked_for": rules.revoke(state, actor=req.actor, operation_hash=req.operation_hash, now=now).counts_for
        }
    if kind == Decision.cancel:
        rules.cancel(state, actor=req.actor, operation_hash=req.operation_hash, reason=req.reason, now=now)
        return {"reason": state.reason}
    if kind == Decision.edit:
        before = state.operation_hash
        rules.edit(state, actor=req.actor, operation_hash=req.operation_hash, changes=req.changes(), now=now)
        return {
            "previous_hash": before,
            "operation_hash": state.operation_hash,
            "tier": state.tier.describe(),
            "changes": {k: _jsonable(getattr(state.operation, k)) for k in req.changes()},
        }  # canonical values
    if kind == Decision.delegate:
        grant = rules.delegate(state, actor=req.actor, delegate_to=req.delegate, until=req.until, now=now)
        return {"delegate": grant.delegate, "until": grant.until.isoformat()}
    raise ValueError(f"unknown decision {kind}")


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, int) else value  # amounts as decimal strings: JSON loses big ints
