"""ApprovalWorkflow: revoking until the threshold, the initiator's edits (approvals cleared, hash and tier
re-chosen, old hashes stale), and delegation (counts once, for the delegator, and not after it ends)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import pytest_asyncio

from paygent.domain.approval_rules import Delegation
from tests.workflows.approval_harness import RECIPIENT, UNIT, actions, running_harness
from workflows.approval_client import DecisionRefused

OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


@pytest_asyncio.fixture(scope="module")
async def h(time_skipping_env, db_engine, redis_url):
    async with running_harness(time_skipping_env, db_engine, redis_url) as harness:
        yield harness


async def refusal(coro) -> DecisionRefused:
    with pytest.raises(DecisionRefused) as exc:
        await coro
    return exc.value


async def test_revoke_own_approval_until_the_threshold_is_met(h):
    handle = await h.start(5_000)
    op_hash = (await h.state(handle)).operation_hash
    await h.decide(handle, "approve", actor="bob", operation_hash=op_hash)
    revoked = await h.decide(handle, "revoke", actor="bob")
    assert (revoked.status, revoked.approvals_had) == ("pending", 0)
    assert (await refusal(h.decide(handle, "revoke", actor="dave"))).type == "NothingToRevoke"
    await h.decide(handle, "approve", actor="bob", operation_hash=op_hash)
    await h.decide(handle, "approve", actor="carol", operation_hash=op_hash)
    late = await refusal(h.decide(handle, "revoke", actor="bob"))
    assert late.type == "ThresholdMet" and "cancel instead" in late.reason
    outcome = await h.outcome(handle)
    assert outcome.status == "approved"
    assert [a for a, _, _ in actions(await h.audit(handle))] == [
        "approval.requested",
        "approval.approve",
        "approval.revoke",
        "approval.approve",
        "approval.approve",
        "approval.decided",
    ]


async def test_edit_clears_approvals_changes_hash_and_tier(h):
    handle = await h.start(5_000)
    first = await h.state(handle)
    await h.decide(handle, "approve", actor="bob", operation_hash=first.operation_hash)
    assert (
        await refusal(h.decide(handle, "edit", actor="bob", operation_hash=first.operation_hash, memo="mine"))
    ).type == "NotInitiator"
    edited = await h.decide(
        handle,
        "edit",
        actor="alice",
        operation_hash=first.operation_hash,
        amount_atomic=20_000 * UNIT,
        to=OTHER.lower(),
    )
    assert (edited.approvals_had, edited.approvals_needed) == (0, 3)
    assert edited.operation_hash != first.operation_hash
    stale = await refusal(h.decide(handle, "approve", actor="carol", operation_hash=first.operation_hash))
    assert stale.type == "StaleOperation" and "edited" in stale.reason
    second = await h.state(handle)
    assert second.operation.to == OTHER and second.previous_hashes == [first.operation_hash]
    assert second.awaiting == ["bob", "carol", "dave"]
    # down to a tier that needs no approval: approved at once
    final = await h.decide(
        handle, "edit", actor="alice", operation_hash=second.operation_hash, amount_atomic=50 * UNIT, clear_memo=True
    )
    assert final.status == "approved"
    outcome = await h.outcome(handle)
    assert (outcome.status, outcome.edits, outcome.approvals) == ("approved", 2, [])
    assert (outcome.operation.amount_atomic, outcome.operation.to, outcome.operation.memo) == (50 * UNIT, OTHER, None)
    assert outcome.operation_hash == final.operation_hash
    audit = await h.audit(handle)
    edits = [r["data"] for r in audit if r["action"] == "approval.edit"]
    assert edits[0]["previous_hash"] == first.operation_hash and edits[0]["tier"] == "3 of bob, carol, dave"
    assert edits[0]["changes"] == {"amount_atomic": str(20_000 * UNIT), "to": OTHER}


async def test_delegate_counts_once_for_the_delegator_and_not_after_it_ends(h):
    handle = await h.start(5_000)
    view = await h.state(handle)
    now = view.opened_at
    await h.decide(handle, "delegate", actor="carol", delegate="erin", until=(now + timedelta(days=2)).isoformat())
    await h.decide(handle, "delegate", actor="dave", delegate="frank", until=(now + timedelta(hours=1)).isoformat())
    assert (await h.state(handle)).awaiting == ["bob", "carol", "dave", "erin", "frank"]
    counted = await h.decide(handle, "approve", actor="erin", operation_hash=view.operation_hash)
    assert (counted.counted, counted.approvals_had) == (True, 1)
    for who in ("erin", "carol"):  # the delegate again, or the delegator herself: still one approval
        assert (await h.decide(handle, "approve", actor=who, operation_hash=view.operation_hash)).duplicate
    await h.env.sleep(timedelta(hours=2))  # frank's delegation from dave ends
    ended = await refusal(h.decide(handle, "approve", actor="frank", operation_hash=view.operation_hash))
    assert ended.type == "DelegationEnded" and "dave to frank ended" in ended.reason
    await h.decide(handle, "approve", actor="bob", operation_hash=view.operation_hash)
    outcome = await h.outcome(handle)
    assert outcome.status == "approved"
    assert [(a.approver, a.on_behalf_of) for a in outcome.approvals] == [("erin", "carol"), ("bob", None)]


async def test_standing_delegation_from_the_input(h):
    until = await h.env.get_current_time() + timedelta(days=2)  # the test server's clock runs ahead of ours
    handle = await h.start(500, delegations=[Delegation(delegator="bob", delegate="zoe", until=until)])
    op_hash = (await h.state(handle)).operation_hash
    await h.decide(handle, "approve", actor="zoe", operation_hash=op_hash)
    outcome = await h.outcome(handle)
    assert [(a.approver, a.on_behalf_of) for a in outcome.approvals] == [("zoe", "bob")]
    assert outcome.operation.to == RECIPIENT
