"""A child's change pushed to the workflow that started it (an agent run): PaymentWorkflow and SwapWorkflow send
`payment_progress` this way, so the run never polls their rows (workflows/agent_pay.py, PushedProgress)."""

from __future__ import annotations

from temporalio import workflow

from workflows import payment_types as pt
from workflows import swap_types as sw
from workflows.approval_types import ApprovalProgress


async def tell_parent(
    change: pt.PaymentProgressChange, state: pt.PaymentState | sw.SwapState, approval: ApprovalProgress | None
) -> None:
    """Signal the child's change (its status now, the approval's latest progress) to its parent workflow.

    The caller checks that there is a parent and that this execution took its patch, and awaits this, so the
    parent receives changes in order and before the child's result. Best effort: a parent that is gone (a
    cancelled run) does not stop the child.
    """
    parent = workflow.info().parent
    assert parent is not None
    progress = pt.PaymentProgress(
        payment_id=state.payment_id, change=change, status=state.status, approval=approval, reason=state.failure_reason
    )
    try:
        await workflow.get_external_workflow_handle(parent.workflow_id).signal(pt.SIGNAL_PROGRESS, progress)
    except Exception as err:
        workflow.logger.warning("could not tell parent %s about %s: %s", parent.workflow_id, change, err)
