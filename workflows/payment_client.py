"""Client side of the PaymentWorkflow's `cancel` Update, for the API (HTTP and MCP, api/payment_cancel.py) and the
agent's cancel activity (activities/agent_payments.py): one way to ask, one shape for the refusal.

The Update's validator refuses once signing began (`PaymentNotCancellable`): that is `CancelRefused` with the
reason. Anything else (the workflow closed or never started: RPCError) is the caller's to answer, since the API
and an agent run answer it differently.
"""

from __future__ import annotations

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from paygent.domain.errors import ErrorType
from workflows.payment_types import UPDATE_CANCEL, PaymentCancelRequest, PaymentState


class CancelRefused(Exception):
    """Too late to cancel: signing has begun. `reason` is the validator's."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def request_cancel(
    client: Client, workflow_id: str, request: PaymentCancelRequest, *, update_id: str | None = None
) -> PaymentState:
    """The payment's state once cancelled; the Update id (when given) makes a retried request count once."""
    try:
        return await client.get_workflow_handle(workflow_id).execute_update(
            UPDATE_CANCEL, request, id=update_id, result_type=PaymentState
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == ErrorType.payment_not_cancellable:
            raise CancelRefused(cause.message) from None
        raise
