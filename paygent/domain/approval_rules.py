"""The M-of-N approval state machine as pure functions over `ApprovalState`.

Why pure: the ApprovalWorkflow runs each rule twice, once in an Update validator on a copy of the state (to refuse
before anything reaches history) and once in the handler under its lock (the state may have moved since), and both
must give the same answer; the rules are also tested directly, without Temporal. Every function either mutates the
state or raises `Refusal` with a type and a reason a human can act on; `now` is passed in (workflow time).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from paygent.domain.approval_policy import ApprovalPolicy, Tier, tier_index
from paygent.domain.approval_state import (  # re-exported: callers import the rules module only
    APPROVAL_FINAL,
    CLOSED,
    DELEGATION_ENDED,
    INVALID,
    NO_CHANGE,
    NOT_ALLOWED,
    NOT_APPROVER,
    NOT_FOUND,
    NOT_INITIATOR,
    NOTHING_TO_REVOKE,
    SELF,
    SIGNALS_OFF,
    STALE,
    THRESHOLD_MET,
    UNSATISFIABLE,
    ApprovalRecord,
    ApprovalState,
    ApprovalStatus,
    Channel,
    Delegation,
    Refusal,
)
from paygent.domain.operation_hash import EDITABLE_FIELDS, Operation
from paygent.domain.operation_hash import operation_hash as hash_of

__all__ = [
    "CLOSED",
    "DELEGATION_ENDED",
    "APPROVAL_FINAL",
    "INVALID",
    "NO_CHANGE",
    "NOT_ALLOWED",
    "NOT_APPROVER",
    "NOT_FOUND",
    "NOT_INITIATOR",
    "NOTHING_TO_REVOKE",
    "SELF",
    "SIGNALS_OFF",
    "STALE",
    "THRESHOLD_MET",
    "UNSATISFIABLE",
    "ApprovalRecord",
    "ApprovalState",
    "Channel",
    "Delegation",
    "Refusal",
    "ApprovalStatus",
    "abandon",
    "approve",
    "cancel",
    "delegate",
    "edit",
    "end_timelock",
    "expire",
    "fmt_time",
    "open_approval",
    "reject",
    "revoke",
]


def fmt_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def open_approval(
    *,
    approval_id: str,
    tenant_id: str,
    initiator: str,
    policy: ApprovalPolicy,
    operation: Operation,
    delegations: list[Delegation],
    now: datetime,
) -> ApprovalState:
    idx = tier_index(policy, operation.amount_atomic)
    state = ApprovalState(
        approval_id=approval_id,
        tenant_id=tenant_id,
        initiator=initiator,
        policy=policy,
        operation=operation,
        operation_hash=hash_of(operation),
        tier_index=idx,
        delegations=list(delegations),
        opened_at=now,
        expires_at=now + timedelta(seconds=policy.tiers[idx].approval_timeout_seconds),
    )
    problem = _unsatisfiable(state.tier, initiator)
    if problem:  # fail at once rather than let it sit until it expires
        _close(state, ApprovalStatus.rejected, "system", now, problem)
    else:
        _check_threshold(state, now, by="system")
    return state


def approve(
    state: ApprovalState,
    *,
    actor: str,
    operation_hash: str | None,
    on_behalf_of: str | None,
    channel: Channel,
    now: datetime,
) -> ApprovalRecord | None:
    """Counts one distinct approver; returns None when this approval was already counted (idempotent)."""
    _ensure_open(state)
    _ensure_hash(state, operation_hash, required=True)
    if actor == state.initiator or on_behalf_of == state.initiator:
        raise Refusal(
            SELF, f"{state.initiator} initiated this operation and cannot approve it (nor can anyone on their behalf)"
        )
    earlier = next((a for a in state.approvals if a.approver == actor), None)
    if earlier is not None:
        if on_behalf_of is not None and on_behalf_of != earlier.counts_for:
            raise Refusal(NOT_ALLOWED, f"{actor} already approved for {earlier.counts_for}; a person counts once")
        return None
    candidates = _acting_for(state, actor, now)
    if on_behalf_of is not None:
        if on_behalf_of not in candidates:
            raise _why_not(state, actor, now, on_behalf_of)
        candidates = [on_behalf_of]
    if not candidates:
        raise _why_not(state, actor, now)
    free = [c for c in candidates if c not in state.approved_by]
    if not free:
        return None
    if state.status == ApprovalStatus.time_locked and state.timelock_until is not None:
        raise Refusal(
            THRESHOLD_MET, f"the approvals are complete; the time-lock runs until {fmt_time(state.timelock_until)}"
        )
    record = ApprovalRecord(approver=actor, on_behalf_of=None if free[0] == actor else free[0], at=now, channel=channel)
    state.approvals.append(record)
    state.revision += 1
    _check_threshold(state, now, by=actor)
    return record


def reject(state: ApprovalState, *, actor: str, operation_hash: str | None, reason: str | None, now: datetime) -> None:
    """One rejection by an approver (or their delegate) ends the approval."""
    _ensure_open(state)
    _ensure_hash(state, operation_hash, required=False)
    if state.status == ApprovalStatus.time_locked:
        raise Refusal(THRESHOLD_MET, "the approvals are complete and the time-lock is running: cancel instead")
    if actor == state.initiator:
        raise Refusal(SELF, f"{actor} initiated this operation: cancel it instead of rejecting it")
    if not _acting_for(state, actor, now):
        raise _why_not(state, actor, now)
    _close(state, ApprovalStatus.rejected, actor, now, reason or f"rejected by {actor}")


def revoke(state: ApprovalState, *, actor: str, operation_hash: str | None, now: datetime) -> ApprovalRecord:
    """Withdraws the actor's own approval (or one a delegate gave for them) while the threshold is not met."""
    _ensure_open(state)
    _ensure_hash(state, operation_hash, required=False)
    if state.status == ApprovalStatus.time_locked:
        raise Refusal(
            THRESHOLD_MET,
            "approvals can be revoked only until the threshold is met; the time-lock is running: cancel instead",
        )
    record = next((a for a in state.approvals if actor in (a.approver, a.on_behalf_of)), None)
    if record is None:
        raise Refusal(NOTHING_TO_REVOKE, f"{actor} has no approval on this operation to revoke")
    state.approvals.remove(record)
    state.revision += 1
    return record


def cancel(state: ApprovalState, *, actor: str, operation_hash: str | None, reason: str | None, now: datetime) -> None:
    """The initiator or any approver of the tier may stop it, while pending or during the time-lock."""
    _ensure_open(state)
    _ensure_hash(state, operation_hash, required=False)
    if actor != state.initiator and not _acting_for(state, actor, now):
        raise Refusal(
            NOT_ALLOWED,
            f"only the initiator ({state.initiator}) or an approver of this tier "
            f"({', '.join(state.tier.approvers) or 'none'}) may cancel; {actor} is neither",
        )
    when = " during the time-lock" if state.status == ApprovalStatus.time_locked else ""
    _close(state, ApprovalStatus.cancelled, actor, now, reason or f"cancelled by {actor}{when}")


def edit(
    state: ApprovalState, *, actor: str, operation_hash: str | None, changes: dict[str, Any], now: datetime
) -> Operation:
    """The initiator changes amount, recipient or memo: approvals are cleared and the tier is chosen again."""
    _ensure_open(state)
    if actor != state.initiator:
        raise Refusal(NOT_INITIATOR, f"only the initiator ({state.initiator}) may edit the operation")
    if state.status == ApprovalStatus.time_locked:
        raise Refusal(
            THRESHOLD_MET,
            "the approvals are complete and the time-lock is running: cancel and "
            "start a new operation instead of editing",
        )
    _ensure_hash(state, operation_hash, required=True)
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown or not changes:
        raise Refusal(
            INVALID,
            f"an edit changes some of {', '.join(EDITABLE_FIELDS)}"
            + (f"; not {', '.join(unknown)}" if unknown else ""),
        )
    try:
        new_op = Operation.model_validate({**state.operation.model_dump(), **changes})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise Refusal(INVALID, f"the edited operation is invalid: {problems}") from None
    new_hash = hash_of(new_op)
    if new_hash == state.operation_hash:
        raise Refusal(NO_CHANGE, "the edit changes nothing")
    idx = tier_index(state.policy, new_op.amount_atomic)
    problem = _unsatisfiable(state.policy.tiers[idx], state.initiator)
    if problem:
        raise Refusal(UNSATISFIABLE, problem)
    state.previous_hashes.append(state.operation_hash)
    state.operation, state.operation_hash, state.tier_index = new_op, new_hash, idx
    state.approvals = []
    state.expires_at = now + timedelta(seconds=state.tier.approval_timeout_seconds)
    state.revision += 1
    state.edits += 1
    _check_threshold(state, now, by="system")
    return new_op


def delegate(state: ApprovalState, *, actor: str, delegate_to: str, until: datetime, now: datetime) -> Delegation:
    """An approver lets another user approve for them until `until` (replacing their earlier delegation)."""
    _ensure_open(state)
    if actor not in state.policy.approver_names():
        raise Refusal(NOT_APPROVER, f"{actor} approves in no tier of this policy, so has nothing to delegate")
    if state.initiator in (actor, delegate_to):
        raise Refusal(
            SELF, f"{state.initiator} initiated this operation: they can neither delegate nor be a delegate on it"
        )
    if delegate_to == actor:
        raise Refusal(INVALID, "cannot delegate to yourself")
    if until <= now:
        raise Refusal(INVALID, f"until ({until.isoformat()}) must be in the future")
    grant = Delegation(delegator=actor, delegate=delegate_to, until=until)
    state.delegations = [d for d in state.delegations if d.delegator != actor] + [grant]
    state.revision += 1
    return grant


def expire(state: ApprovalState, now: datetime) -> None:
    if state.status == ApprovalStatus.pending and now >= state.expires_at:
        _close(
            state,
            ApprovalStatus.expired,
            "system",
            now,
            f"no decision before {fmt_time(state.expires_at)}: "
            f"{len(state.approvals)} of {state.approvals_needed} approvals",
        )


def end_timelock(state: ApprovalState, now: datetime) -> None:
    if state.status == ApprovalStatus.time_locked and state.timelock_until is not None and now >= state.timelock_until:
        names = ", ".join(state.approved_by)
        _close(
            state,
            ApprovalStatus.approved,
            state.threshold_met_by or "system",
            now,
            f"{len(state.approvals)} of {state.approvals_needed} approvals ({names}); time-lock ended "
            f"{fmt_time(state.timelock_until)}",
        )


def abandon(state: ApprovalState, now: datetime, reason: str) -> None:
    """The workflow itself was cancelled (not a human decision): the approval ends cancelled, by the system."""
    if state.status not in APPROVAL_FINAL:
        _close(state, ApprovalStatus.cancelled, "system", now, reason)


def _close(state: ApprovalState, status: ApprovalStatus, by: str, now: datetime, reason: str) -> None:
    state.status, state.decided_by, state.decided_at, state.reason = status, by, now, reason
    state.revision += 1


def _check_threshold(state: ApprovalState, now: datetime, *, by: str) -> None:
    if state.status != ApprovalStatus.pending or len(state.approvals) < state.approvals_needed:
        return
    state.threshold_met_at, state.threshold_met_by = now, by
    if state.tier.timelock_seconds > 0:
        state.status = ApprovalStatus.time_locked
        state.timelock_until = now + timedelta(seconds=state.tier.timelock_seconds)
        state.revision += 1
    elif state.approvals_needed == 0:
        _close(state, ApprovalStatus.approved, "system", now, "the tier for this amount needs no approval")
    else:
        _close(
            state,
            ApprovalStatus.approved,
            by,
            now,
            f"{len(state.approvals)} of {state.approvals_needed} approvals ({', '.join(state.approved_by)})",
        )


def _ensure_open(state: ApprovalState) -> None:
    if state.status in APPROVAL_FINAL:
        by = f" by {state.decided_by}" if state.decided_by else ""
        raise Refusal(CLOSED, f"approval {state.approval_id} is already {state.status}{by}: {state.reason}")


def _ensure_hash(state: ApprovalState, given: str | None, *, required: bool) -> None:
    if given is None:
        if required:
            raise Refusal(INVALID, "operation_hash is required: a decision names the exact operation it is about")
        return
    if given.lower() == state.operation_hash:
        return
    if given.lower() in state.previous_hashes:
        raise Refusal(
            STALE,
            f"operation {given} is stale: the initiator edited it; the current operation is {state.operation_hash}",
        )
    raise Refusal(STALE, f"operation {given} is not this approval's operation ({state.operation_hash})")


def _acting_for(state: ApprovalState, actor: str, now: datetime) -> list[str]:
    """The tier approvers the actor may act for right now: themselves first, then active delegators."""
    out = [actor] if actor in state.tier.approvers and actor != state.initiator else []
    out += [
        d.delegator
        for d in state.delegations
        if d.delegate == actor
        and d.until > now
        and d.delegator in state.tier.approvers
        and d.delegator != state.initiator
        and d.delegator not in out
    ]
    return out


def _why_not(state: ApprovalState, actor: str, now: datetime, member: str | None = None) -> Refusal:
    ended = [
        d
        for d in state.delegations
        if d.delegate == actor and d.until <= now and (member is None or d.delegator == member)
    ]
    if ended:
        d = ended[-1]
        return Refusal(DELEGATION_ENDED, f"the delegation from {d.delegator} to {actor} ended at {fmt_time(d.until)}")
    whom = f" for {member}" if member else ""
    return Refusal(
        NOT_APPROVER,
        f"{actor} may not decide{whom} on this operation: this tier needs "
        f"{state.tier.describe()}, and {actor} holds no active delegation from them",
    )


def _unsatisfiable(tier: Tier, initiator: str) -> str | None:
    eligible = [m for m in tier.approvers if m != initiator]
    if len(eligible) < tier.approvals_required:
        return (
            f"this amount needs {tier.describe()}, but {initiator} initiated it and cannot approve, "
            f"so at most {len(eligible)} approval(s) are possible"
        )
    return None
