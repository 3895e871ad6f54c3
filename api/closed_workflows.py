"""A request against a workflow that has closed answers 409 with the state, never 500.

A workflow can close without its row being final: terminated with Temporal's tools (the reconcile tick's orphan
sweep ends the row later), or cancelled on code from before the payment honoured a Temporal cancel. Temporal then
refuses Updates, Signals and cancels with an RPC error; the routes ask `describe` whether that is the reason and
answer with what the row says.
"""

from __future__ import annotations

from temporalio.client import Client

from api.errors import ApiError
from paygent.workflow_status import closed_status as workflow_closed_status


async def closed_status(client: Client, workflow_id: str) -> str | None:
    return await workflow_closed_status(client.get_workflow_handle(workflow_id))


def closed_conflict(what: str, row_status: str, workflow_status: str) -> ApiError:
    return ApiError(
        409,
        "workflow_closed",
        f"{what} is {row_status} and its workflow has already closed ({workflow_status.lower()}): nothing can change "
        "it any more; an open row is ended by the reconciler's next sweep",
    )
