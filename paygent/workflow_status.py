"""Whether a workflow has closed, for the doors that must answer 409 (not 500) when Temporal refuses a request
against a closed workflow (api/closed_workflows.py, workflows/approval_client.py)."""

from __future__ import annotations

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError


async def closed_status(handle: WorkflowHandle) -> str | None:
    """How the workflow's latest run closed (`TERMINATED`, `CANCELED`, ...); None while it runs or when it cannot
    be described (then the caller's original error stands)."""
    try:
        described = await handle.describe()
    except RPCError:
        return None
    if described.status in (None, WorkflowExecutionStatus.RUNNING):
        return None
    return described.status.name
