"""The approval rules without Temporal: every refusal names its type and reason; counting is per distinct human."""

from datetime import UTC, datetime, timedelta

import pytest

from paygent.domain import approval_rules as r
from paygent.domain.approval_policy import default_dev_policy
from paygent.domain.operation_hash import Operation

T0 = datetime(2026, 1, 5, 13, 5, tzinfo=UTC)
UNIT = 10**6


def opened(amount_tokens=5_000, initiator="alice", delegations=()) -> r.ApprovalState:
    op = Operation(
        chain_id=31337,
        wallet_id="w1",
        asset="USDC",
        token_address="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        to="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        amount_atomic=amount_tokens * UNIT,
        payment_id="p1",
        memo="m",
    )
    return r.open_approval(
        approval_id="a1",
        tenant_id="t",
        initiator=initiator,
        policy=default_dev_policy(),
        operation=op,
        delegations=list(delegations),
        now=T0,
    )


def approve(s, who, at=T0, h=None, for_=None):
    return r.approve(s, actor=who, operation_hash=h or s.operation_hash, on_behalf_of=for_, channel="api", now=at)


def refused(type_, fn, *args, **kwargs) -> str:
    with pytest.raises(r.Refusal) as exc:
        fn(*args, **kwargs)
    assert exc.value.type == type_, exc.value.reason
    return exc.value.reason


def test_distinct_approvers_meet_the_threshold_then_the_timelock_runs():
    s = opened()  # 2 of bob, carol, dave; 1-hour time-lock
    assert approve(s, "bob") is not None and approve(s, "bob") is None  # duplicate: counted once
    assert (s.status, len(s.approvals)) == ("pending", 1)
    approve(s, "carol", at=T0 + timedelta(minutes=5))
    assert s.status == "time_locked" and s.timelock_until == T0 + timedelta(minutes=65)
    assert approve(s, "carol") is None  # a duplicate during the time-lock is still harmless
    assert "time-lock" in refused(r.THRESHOLD_MET, approve, s, "dave")
    r.end_timelock(s, T0 + timedelta(minutes=64))
    assert s.status == "time_locked"  # nothing is approved before the time-lock ends
    r.end_timelock(s, T0 + timedelta(minutes=65))
    assert (s.status, s.decided_by) == ("approved", "carol") and "bob, carol" in s.reason


def test_the_spelling_before_issue_10_still_reads_as_time_locked():
    """Histories, rows and clients from before the rename say `timelocked`: it parses to the same status."""
    s = opened()
    legacy = type(s).model_validate_json(s.model_dump_json().replace('"pending"', '"timelocked"'))
    assert legacy.status is r.ApprovalStatus.time_locked and legacy.status == "time_locked"
    assert r.ApprovalStatus("timelocked") is r.ApprovalStatus.time_locked


def test_who_may_not_approve():
    s = opened(initiator="bob")
    assert "cannot approve" in refused(r.SELF, approve, s, "bob")
    reason = refused(r.NOT_APPROVER, approve, s, "mallory")
    assert "mallory" in reason and "2 of bob, carol, dave" in reason
    assert "required" in refused(
        r.INVALID, r.approve, s, actor="carol", operation_hash=None, on_behalf_of=None, channel="api", now=T0
    )
    assert "not this approval's operation" in refused(r.STALE, approve, s, "carol", h="0x" + "0" * 64)


def test_initiator_in_a_three_of_three_tier_is_rejected_at_once():
    s = opened(amount_tokens=20_000, initiator="bob")
    assert (s.status, s.decided_by) == ("rejected", "system") and "at most 2" in s.reason


def test_zero_approval_tier_is_approved_at_open():
    s = opened(amount_tokens=50)
    assert (s.status, s.decided_by) == ("approved", "system")


def test_reject_ends_it_and_later_decisions_are_refused_with_the_reason():
    s = opened()
    approve(s, "bob")
    r.reject(s, actor="carol", operation_hash=None, reason="unknown vendor", now=T0)
    assert (s.status, s.decided_by, s.reason) == ("rejected", "carol", "unknown vendor")
    reason = refused(r.CLOSED, approve, s, "dave")
    assert "already rejected by carol: unknown vendor" in reason
    refused(r.SELF, r.reject, opened(), actor="alice", operation_hash=None, reason=None, now=T0)


def test_revoke_until_the_threshold_is_met():
    s = opened()
    approve(s, "bob")
    assert r.revoke(s, actor="bob", operation_hash=None, now=T0).approver == "bob" and s.approvals == []
    refused(r.NOTHING_TO_REVOKE, r.revoke, s, actor="bob", operation_hash=None, now=T0)
    approve(s, "bob"), approve(s, "carol")
    assert "cancel instead" in refused(r.THRESHOLD_MET, r.revoke, s, actor="bob", operation_hash=None, now=T0)


def test_cancel_by_initiator_or_approver_only():
    s = opened()
    refused(r.NOT_ALLOWED, r.cancel, s, actor="mallory", operation_hash=None, reason=None, now=T0)
    approve(s, "bob"), approve(s, "carol")
    r.cancel(s, actor="dave", operation_hash=None, reason=None, now=T0)
    assert (s.status, s.reason) == ("cancelled", "cancelled by dave during the time-lock")


def test_edit_clears_approvals_rechooses_the_tier_and_makes_old_hashes_stale():
    s = opened()
    old = s.operation_hash
    approve(s, "bob")
    refused(r.NOT_INITIATOR, r.edit, s, actor="bob", operation_hash=old, changes={"memo": "x"}, now=T0)
    refused(r.NO_CHANGE, r.edit, s, actor="alice", operation_hash=old, changes={"memo": "m"}, now=T0)
    refused(r.INVALID, r.edit, s, actor="alice", operation_hash=old, changes={"asset": "DAI"}, now=T0)
    assert "to" in refused(r.INVALID, r.edit, s, actor="alice", operation_hash=old, changes={"to": "0x12"}, now=T0)
    later = T0 + timedelta(hours=3)
    r.edit(s, actor="alice", operation_hash=old, changes={"amount_atomic": 20_000 * UNIT}, now=later)
    assert s.approvals == [] and s.operation_hash != old and s.approvals_needed == 3
    assert s.expires_at == later + timedelta(hours=24)
    assert "edited" in refused(r.STALE, approve, s, "carol", h=old)
    r.edit(s, actor="alice", operation_hash=s.operation_hash, changes={"amount_atomic": 10 * UNIT}, now=later)
    assert (s.status, s.edits) == ("approved", 2)


def test_delegate_counts_once_for_the_delegator_and_not_after_the_delegation_ends():
    s = opened()
    until = T0 + timedelta(hours=1)
    r.delegate(s, actor="carol", delegate_to="erin", until=until, now=T0)
    r.delegate(s, actor="dave", delegate_to="erin", until=until, now=T0)
    assert s.awaiting(T0) == ["bob", "carol", "dave", "erin"]
    record = approve(s, "erin")
    assert (record.approver, record.on_behalf_of) == ("erin", "carol")
    assert approve(s, "erin") is None and len(s.approvals) == 1  # one person, one approval
    assert "counts once" in refused(r.NOT_ALLOWED, approve, s, "erin", for_="dave")
    assert approve(s, "carol") is None  # carol is already counted through erin
    r.revoke(s, actor="carol", operation_hash=None, now=T0)  # the delegator may withdraw it
    reason = refused(r.DELEGATION_ENDED, approve, s, "erin", at=until)
    assert "to erin ended" in reason


def test_delegation_refusals():
    s = opened()
    future = T0 + timedelta(hours=1)
    refused(r.NOT_APPROVER, r.delegate, s, actor="mallory", delegate_to="erin", until=future, now=T0)
    refused(r.SELF, r.delegate, s, actor="bob", delegate_to="alice", until=future, now=T0)
    refused(r.INVALID, r.delegate, s, actor="bob", delegate_to="bob", until=future, now=T0)
    refused(r.INVALID, r.delegate, s, actor="bob", delegate_to="erin", until=T0, now=T0)


def test_expire_only_after_the_deadline():
    s = opened()
    r.expire(s, T0 + timedelta(hours=23))
    assert s.status == "pending"
    r.expire(s, T0 + timedelta(hours=24))
    assert (s.status, s.decided_by) == ("expired", "system") and "0 of 2" in s.reason
