"""Running approvals survive this change: a history recorded with the ApprovalWorkflow as it was before the
signal-decisions gate and the channel rules (Signals that claim "api", a refused Signal, a cancel) replays without
a nondeterminism error under today's code and worker interceptors.

The history was recorded against the previous code (`git archive` of the branch point) with stand-in activities;
only the activities' results are in a history, so the stand-ins change nothing that replay checks.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workers.data_errors import DataErrorInterceptor
from workers.main import workflow_runner
from workers.tenant_context import TenantInterceptor
from workflows.approval import ApprovalWorkflow

HISTORY = Path(__file__).parent / "histories" / "approval_signals_before_integrity.json"


async def test_approval_recorded_before_the_gate_replays_under_the_new_code():
    history = WorkflowHistory.from_json("approval-recorded", HISTORY.read_text())
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert signals == ["approve", "approve", "cancel"]
    replayer = Replayer(
        workflows=[ApprovalWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
        interceptors=[DataErrorInterceptor(), TenantInterceptor()],
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
