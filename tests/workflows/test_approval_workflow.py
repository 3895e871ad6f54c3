"""ApprovalWorkflow, core quorum: distinct approvers, idempotent duplicates (also 50 concurrent), who may not
approve, one rejection ends it, and decisions after the end are refused with the reason."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
import pytest_asyncio

from paygent import search_attributes as keys
from tests.workflows.approval_harness import actions, running_harness
from workflows.approval_client import DecisionRefused


@pytest_asyncio.fixture(scope="module")
async def h(time_skipping_env, db_engine, redis_url):
    async with running_harness(time_skipping_env, db_engine, redis_url) as harness:
        yield harness


async def test_two_of_three_then_timelock_then_approved(h):
    handle = await h.start(5_000)  # 2 of bob, carol, dave; 1-hour time-lock
    view = await h.state(handle)
    assert (view.status, view.approvals_had, view.approvals_needed) == ("pending", 0, 2)
    assert view.awaiting == ["bob", "carol", "dave"]
    first = await h.decide(handle, "approve", actor="bob", operation_hash=view.operation_hash)
    again = await h.decide(handle, "approve", actor="bob", operation_hash=view.operation_hash)
    assert (first.counted, first.approvals_had) == (True, 1)
    assert (again.counted, again.duplicate, again.approvals_had) == (False, True, 1)
    second = await h.decide(handle, "approve", actor="carol", operation_hash=view.operation_hash, channel="cli")
    assert (second.status, second.approvals_had) == ("time_locked", 2)

    locked = await h.state(handle)
    assert locked.timelock_until - locked.approvals[-1].at == timedelta(hours=1)
    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(keys.APPROVAL_STATE) == "time_locked"
    assert (attrs.get(keys.APPROVALS_HAD), attrs.get(keys.APPROVALS_NEEDED)) == (2, 2)
    assert (attrs.get(keys.TENANT), attrs.get(keys.AMOUNT)) == (h.tenant_id, 5_000 * 10**6)

    outcome = await h.outcome(handle)  # time skips through the hour
    assert (outcome.status, outcome.decided_by) == ("approved", "carol")
    assert outcome.decided_at >= locked.timelock_until
    assert [(a.approver, a.channel) for a in outcome.approvals] == [("bob", "api"), ("carol", "cli")]
    assert outcome.operation_hash == view.operation_hash
    # sent straight to Temporal (not through the API, which attests what it sends): audited as `temporal`
    assert actions(await h.audit(handle)) == [
        ("approval.requested", "alice", "system"),
        ("approval.approve", "bob", "temporal"),
        ("approval.approve", "carol", "temporal"),
        ("approval.decided", "system", "system"),
    ]
    row = await h.row(handle)
    assert (row["status"], row["approvals_had"], row["approved_by"], row["awaiting"]) == (
        "approved",
        2,
        ["bob", "carol"],
        [],
    )


async def test_fifty_concurrent_approvals_from_three_approvers_count_three(h):
    handle = await h.start(20_000)  # 3 of 3
    op_hash = (await h.state(handle)).operation_hash
    results = await asyncio.gather(
        *(h.decide(handle, "approve", actor=("bob", "carol", "dave")[i % 3], operation_hash=op_hash) for i in range(50))
    )
    assert sum(r.counted for r in results) == 3
    assert sum(r.duplicate for r in results) == 47
    outcome = await h.outcome(handle)
    assert outcome.status == "approved"
    assert sorted(a.approver for a in outcome.approvals) == ["bob", "carol", "dave"]
    assert [a for a, _, _ in actions(await h.audit(handle))].count("approval.approve") == 3


async def test_a_retried_request_id_is_answered_once(h):
    handle = await h.start(500)  # 1 of 3, no time-lock
    view = await h.state(handle)
    op_hash, until = view.operation_hash, view.opened_at + timedelta(days=2)  # server time, not wall-clock
    request_id = str(uuid.uuid4())  # e.g. the HTTP Idempotency-Key: the Update id
    answers = await asyncio.gather(
        *(
            h.decide(handle, "delegate", actor="carol", delegate="erin", until=until.isoformat(), request_id=request_id)
            for _ in range(3)
        )
    )
    assert len({a.model_dump_json() for a in answers}) == 1
    assert [a for a, _, _ in actions(await h.audited(handle, "approval.delegate"))].count("approval.delegate") == 1
    await h.decide(handle, "approve", actor="dave", operation_hash=op_hash)
    assert (await h.outcome(handle)).status == "approved"


async def test_initiator_and_outsiders_are_refused_with_the_reason(h):
    handle = await h.start(5_000, initiator="bob")
    op_hash = (await h.state(handle)).operation_hash
    with pytest.raises(DecisionRefused) as own:
        await h.decide(handle, "approve", actor="bob", operation_hash=op_hash)
    assert own.value.type == "SelfApproval" and "cannot approve" in own.value.reason
    with pytest.raises(DecisionRefused) as outsider:
        await h.decide(handle, "approve", actor="mallory", operation_hash=op_hash)
    assert outsider.value.type == "NotAnApprover"
    assert "mallory" in outsider.value.reason and "2 of bob, carol, dave" in outsider.value.reason
    with pytest.raises(DecisionRefused) as stale:
        await h.decide(handle, "approve", actor="carol", operation_hash="0x" + "ab" * 32)
    assert stale.value.type == "StaleOperation"
    await h.decide(handle, "cancel", actor="bob", reason="test done")
    assert (await h.outcome(handle)).status == "cancelled"
    history = await handle.fetch_history()  # refused in the validator: never written to history
    assert sum(e.HasField("workflow_execution_update_accepted_event_attributes") for e in history.events) == 1
    assert actions(await h.audit(handle)) == [
        ("approval.requested", "bob", "system"),
        ("approval.cancel", "bob", "temporal"),
        ("approval.decided", "system", "system"),
    ]


async def test_one_rejection_ends_it_and_later_approvals_are_refused_with_the_reason(h):
    handle = await h.start(5_000)
    op_hash = (await h.state(handle)).operation_hash
    await h.decide(handle, "approve", actor="bob", operation_hash=op_hash)
    rejected = await h.decide(handle, "reject", actor="carol", reason="unknown vendor")
    assert rejected.status == "rejected"
    outcome = await h.outcome(handle)
    assert (outcome.status, outcome.decided_by, outcome.reason) == ("rejected", "carol", "unknown vendor")
    with pytest.raises(DecisionRefused) as late:
        await h.decide(handle, "approve", actor="dave", operation_hash=op_hash)
    assert late.value.type == "ApprovalClosed"
    assert "already rejected by carol: unknown vendor" in late.value.reason
    assert (await h.row(handle))["status"] == "rejected"
