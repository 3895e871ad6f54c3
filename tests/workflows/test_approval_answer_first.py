"""ApprovalWorkflow answers a decision at Update speed: the answer does not wait for the audit row or the parent's
progress, yet both land before the approval moves on or ends, even when the worker that answered is gone.
Another tenant's caller is refused by the Update's validator, with nothing written to history."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from activities.approvals import ApprovalActivities, approval_activities
from paygent.settings import Settings
from tests.workflows.approval_harness import actions, running_harness
from workflows.approval import ApprovalWorkflow
from workflows.approval_client import DecisionRefused


@pytest_asyncio.fixture
async def h(time_skipping_env, db_engine, redis_url):
    async with running_harness(time_skipping_env, db_engine, redis_url) as harness:
        yield harness


async def test_an_approve_answers_before_its_audit_row_which_still_lands_before_the_end(h):
    # Workers of our own on a queue of our own, none keeping workflows cached: each task replays the history, as a
    # new worker does after a crash (and a stopped worker leaves no sticky queue behind).
    h = dataclasses.replace(h, task_queue=f"answer-first-{uuid.uuid4().hex[:8]}")
    acts = ApprovalActivities(h.engine, h.redis, Settings())

    def worker(*, with_activities: bool) -> Worker:
        return Worker(
            h.client,
            task_queue=h.task_queue,
            workflows=[ApprovalWorkflow],
            activities=approval_activities(acts) if with_activities else [],
            max_cached_workflows=0,
        )

    try:
        async with worker(with_activities=True):
            handle = await h.start(500)  # 1 of bob, carol, dave: one approve decides it
            await h.audited(handle, "approval.requested")
            op_hash = (await h.state(handle)).operation_hash
        # Only workflows run now (the activity side is down): no audit row can land, yet the approve is answered.
        async with worker(with_activities=False):
            answer = await h.decide(handle, "approve", actor="bob", operation_hash=op_hash)
            assert (answer.status, answer.counted, answer.approvals_had) == ("approved", True, 1)
            await asyncio.sleep(1.0)  # the approval is decided, but it owes its audit row: it must not end
            assert [a for a, _, _ in actions(await h.audit(handle))] == ["approval.requested"]
            assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        async with worker(with_activities=True):  # what was owed is written, in order, and only then does it end
            outcome = await h.outcome(handle)
    finally:
        await acts.aclose()
    assert (outcome.status, outcome.decided_by) == ("approved", "bob")
    assert actions(await h.audit(handle)) == [
        ("approval.requested", "alice", "system"),
        ("approval.approve", "bob", "temporal"),  # no API attestation in this test: recorded as `temporal`
        ("approval.decided", "system", "system"),
    ]


async def test_a_caller_of_another_tenant_is_refused_as_not_found_and_nothing_reaches_history(h):
    handle = await h.start(5_000)
    op_hash = (await h.state(handle)).operation_hash
    with pytest.raises(DecisionRefused) as other:
        await h.decide(handle, "approve", actor="bob", operation_hash=op_hash, tenant_id=str(uuid.uuid4()))
    assert (other.value.type, other.value.reason) == ("ApprovalNotFound", "approval not found")
    history = await handle.fetch_history()
    assert not any(e.HasField("workflow_execution_update_accepted_event_attributes") for e in history.events)
    same = await h.decide(handle, "approve", actor="bob", operation_hash=op_hash, tenant_id=h.tenant_id)
    assert same.counted and (await h.state(handle)).approvals_had == 1
    await h.decide(handle, "cancel", actor="bob", reason="test done")
    assert (await h.outcome(handle)).status == "cancelled"
