"""Workflows recorded before payments pushed their progress to the parent run (before `workflow.patched`
`agent-run-payment-push-v1`, `payment-progress-to-parent-v1`, `approval-progress-to-parent-v1`) replay on
today's code without a nondeterminism error, so runs in flight at a deploy carry on.

The histories were recorded by the previous code (main at ac6a27c) running tests/agents/test_approvals.py (runs
that wait for 2 approvals: approved, rejected, cancelled while waiting) and the time-lock tests of
tests/approvals/test_approval_flow.py (a payment told of its time-lock by the old `approval_timelocked` signal).
"""

from __future__ import annotations

import gzip
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.approvals import APPROVAL_WORKFLOWS
from workers.data_errors import DataErrorInterceptor
from workers.main import workflow_runner
from workers.tenant_context import TenantInterceptor
from workflows.agent_run import AgentRunWorkflow
from workflows.payment import PaymentWorkflow

HISTORIES = Path(__file__).parent / "histories" / "before_push"


def replayer() -> Replayer:
    """The worker's workflows, sandbox, converter and interceptors (see workers/main.py)."""
    return Replayer(
        workflows=[PaymentWorkflow, AgentRunWorkflow, *APPROVAL_WORKFLOWS],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
        interceptors=[DataErrorInterceptor(), TenantInterceptor()],
    )


async def test_workflows_recorded_before_the_push_replay_on_todays_code():
    files = sorted(HISTORIES.glob("*.json.gz"))
    kinds = {f.name.split("-", 1)[0] for f in files}
    assert len(files) == 13 and kinds == {"AgentRunWorkflow", "PaymentWorkflow", "ApprovalWorkflow"}
    histories = [
        WorkflowHistory.from_json(
            f.name.split("-", 1)[1].removesuffix(".json.gz"), gzip.decompress(f.read_bytes()).decode()
        )
        for f in files
    ]
    assert await replay_all(histories) == {}


async def replay_all(histories: list[WorkflowHistory]) -> dict[str, str]:
    """Replay each history on today's code; returns the failures by run id (empty when all replay)."""

    async def each():
        for history in histories:
            yield history

    results = await replayer().replay_workflows(each(), raise_on_replay_failure=False)
    return {run_id: str(err) for run_id, err in results.replay_failures.items()}
