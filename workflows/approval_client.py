"""Client side of the ApprovalWorkflow, for the API, the CLI and tests: send a decision, read the state.

One error shape for every refusal: `DecisionRefused(type, reason)`, whether the workflow's validator refused the
Update or the workflow had already ended (then the server knows no Update handler; the reason comes from the
`state` Query, which still answers on a closed workflow).
"""

from __future__ import annotations

import asyncio
import time
import uuid

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from paygent.domain.approval_rules import APPROVAL_FINAL, CLOSED, NOT_FOUND
from paygent.workflow_status import closed_status
from workflows.approval_types import (
    QUERY_STATE,
    REQUEST_MODELS,
    ApprovalView,
    Decision,
    DecisionResult,
    approval_workflow_id,
)

# The server turns an Update away for a moment when too many are in flight on one workflow (RESOURCE_EXHAUSTED:
# the dev server allows 10) or when it aborted one whose workflow task was lost (UNAVAILABLE). The same Update id
# is sent again: one that was accepted after all is answered once, never counted twice.
BUSY = frozenset({RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE})
BUSY_RETRY_SECONDS = 10.0


class ApprovalBusy(Exception):
    """The approval's workflow kept turning the decision away for BUSY_RETRY_SECONDS: nothing was decided."""


async def _execute_update(
    handle: WorkflowHandle, decision: Decision, request: BaseModel, update_id: str
) -> DecisionResult:
    deadline, pause = time.monotonic() + BUSY_RETRY_SECONDS, 0.05
    while True:
        try:
            result: DecisionResult = await handle.execute_update(
                decision, request, id=update_id, result_type=DecisionResult
            )
            return result
        except RPCError as exc:
            if exc.status not in BUSY:
                raise
            if time.monotonic() + pause > deadline:
                raise ApprovalBusy(f"the approval is busy ({exc.message}); nothing was decided") from None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)


class DecisionRefused(Exception):
    def __init__(self, type_: str, reason: str) -> None:
        super().__init__(f"{type_}: {reason}")
        self.type = type_
        self.reason = reason


async def get_state(client: Client, approval_id: str) -> ApprovalView:
    handle = client.get_workflow_handle(approval_workflow_id(approval_id))
    return await handle.query(QUERY_STATE, result_type=ApprovalView)


async def send_decision(
    client: Client, approval_id: str, decision: Decision, request: BaseModel, *, request_id: str | None = None
) -> DecisionResult:
    """Sends one decision as an Update whose id is the request id, so a retried request is answered once.

    Pass the caller's request id (e.g. the HTTP Idempotency-Key) to make retries safe across processes. A request
    that names its tenant is refused as `ApprovalNotFound` for another tenant's approval, or for none at all.
    """
    if decision not in REQUEST_MODELS or not isinstance(request, REQUEST_MODELS[decision]):
        raise ValueError(f"{decision!r} takes a {REQUEST_MODELS.get(decision, BaseModel).__name__}")
    handle = client.get_workflow_handle(approval_workflow_id(approval_id))
    try:
        return await _execute_update(handle, decision, request, request_id or str(uuid.uuid4()))
    except WorkflowUpdateFailedError as exc:
        if isinstance(exc.cause, ApplicationError):
            raise DecisionRefused(exc.cause.type or "Refused", exc.cause.message) from None
        raise
    except RPCError as exc:
        tenant_id = getattr(request, "tenant_id", None)
        try:
            view: ApprovalView | None = await get_state(client, approval_id)
        except RPCError:
            view = None  # no such approval: the original error says so
        if tenant_id is not None and (
            (view is None and exc.status == RPCStatusCode.NOT_FOUND)
            or (view is not None and view.tenant_id != tenant_id)
        ):
            raise DecisionRefused(NOT_FOUND, "approval not found") from None
        if view is not None and view.status in APPROVAL_FINAL:
            by = f" by {view.decided_by}" if view.decided_by else ""
            raise DecisionRefused(
                CLOSED, f"approval {approval_id} is already {view.status}{by}: {view.reason}"
            ) from None
        closed = await closed_status(handle)
        if closed is not None:  # terminated (say) while open: nobody can decide it any more
            shown = view.status if view is not None else "open"
            raise DecisionRefused(
                CLOSED,
                f"approval {approval_id} is {shown} but its workflow has already closed ({closed.lower()}): "
                "nobody can decide it any more",
            ) from None
        raise exc
