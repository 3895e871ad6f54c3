"""ApprovalWorkflow and time: the approval deadline (expired), the time-lock after the threshold (a summarised
timer; cancel by an approver or the initiator; nothing approved before it ends). A day passes in milliseconds."""

from __future__ import annotations

from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio.api.sdk.v1 import WorkflowMetadata

from tests.workflows.approval_harness import actions, running_harness
from workflows.approval_client import DecisionRefused


@pytest_asyncio.fixture(scope="module")
async def h(time_skipping_env, db_engine, redis_url):
    async with running_harness(time_skipping_env, db_engine, redis_url) as harness:
        yield harness


async def timer_summaries(h, handle) -> list[str]:
    out = []
    async for event in handle.fetch_history_events():
        if event.HasField("timer_started_event_attributes") and event.user_metadata.HasField("summary"):
            out.append(h.client.data_converter.payload_converter.from_payload(event.user_metadata.summary, str))
    return out


async def test_no_decision_before_the_deadline_expires_and_late_approvals_are_refused(h):
    handle = await h.start(5_000)
    view = await h.state(handle)
    await h.decide(handle, "approve", actor="bob", operation_hash=view.operation_hash)
    outcome = await h.outcome(handle)  # 24 hours skip by
    assert (outcome.status, outcome.decided_by) == ("expired", "system")
    assert outcome.decided_at - view.opened_at >= timedelta(hours=24)
    assert "1 of 2 approvals" in outcome.reason
    with pytest.raises(DecisionRefused) as late:
        await h.decide(handle, "approve", actor="carol", operation_hash=view.operation_hash)
    assert late.value.type == "ApprovalClosed" and "already expired by system: no decision before" in late.value.reason
    assert (await h.row(handle))["status"] == "expired"
    assert actions(await h.audit(handle))[-1] == ("approval.decided", "system", "system")
    assert any(s.startswith("approval deadline ") for s in await timer_summaries(h, handle))


async def test_timelock_runs_after_the_threshold_and_an_approver_cancels_it(h):
    handle = await h.start(5_000)
    op_hash = (await h.state(handle)).operation_hash
    await h.decide(handle, "approve", actor="bob", operation_hash=op_hash)
    await h.decide(handle, "approve", actor="carol", operation_hash=op_hash)
    locked = await h.state(handle)
    assert locked.status == "time_locked" and locked.decided_at is None  # nothing approved yet
    assert (await h.row_when(handle, "time_locked"))["status"] == "time_locked"
    details = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "**time_locked**: 2 of 2 needed approvals (2 approvals needed from bob, carol or dave)" in (
        details.current_details
    )
    assert "approved by: bob via api, carol via api" in details.current_details
    cancelled = await h.decide(handle, "cancel", actor="dave", reason="vendor called: wrong account")
    assert cancelled.status == "cancelled"
    outcome = await h.outcome(handle)
    assert (outcome.status, outcome.decided_by, outcome.reason) == ("cancelled", "dave", "vendor called: wrong account")
    assert outcome.decided_at < locked.timelock_until
    until = locked.timelock_until.strftime("%H:%M")
    assert f"time-lock until {until} UTC" in await timer_summaries(h, handle)


async def test_the_initiator_cancels_during_the_timelock(h):
    handle = await h.start(20_000)
    op_hash = (await h.state(handle)).operation_hash
    for who in ("bob", "carol", "dave"):
        await h.decide(handle, "approve", actor=who, operation_hash=op_hash)
    await h.decide(handle, "cancel", actor="alice")
    outcome = await h.outcome(handle)
    assert (outcome.status, outcome.reason) == ("cancelled", "cancelled by alice during the time-lock")
    with pytest.raises(DecisionRefused) as outsider_cancel:  # after the end, still a clean refusal
        await h.decide(handle, "cancel", actor="mallory")
    assert outsider_cancel.value.type == "ApprovalClosed"


async def test_cancelling_the_workflow_itself_still_gives_a_clean_audited_outcome(h):
    handle = await h.start(5_000)
    await h.state(handle)
    await handle.cancel()  # an approval of its own, cancelled with Temporal's tools (the API's cancel is an Update)
    outcome = await h.outcome(handle)
    assert (outcome.status, outcome.decided_by) == ("cancelled", "system")
    audit = actions(await h.audit(handle))
    assert (audit[0][0], audit[-1]) == ("approval.requested", ("approval.decided", "system", "temporal"))
