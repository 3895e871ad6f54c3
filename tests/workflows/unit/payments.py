"""Helpers for the PaymentWorkflow unit tests: start a payment on a stub worker, watch its `state` query, and
decide its approval through the real ApprovalWorkflow child's Updates (as the API does)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from paygent.domain import payment as dp
from tests.workflows.unit.stubs import Stubs, stub_worker
from workflows import approval_types as ap
from workflows import payment_types as pt
from workflows.approval_client import get_state, send_decision
from workflows.payment import PaymentWorkflow

During = Callable[[WorkflowHandle], Awaitable[Any]]
# Skipped time makes hours pass in milliseconds; a run that still takes this long is stuck (e.g. the server
# stopped skipping time), and fails here rather than hanging the session.
RESULT_TIMEOUT = 60


async def pay(env: WorkflowEnvironment, req: dp.PaymentRequest, stubs: Stubs, during: During | None = None):
    """Runs the payment to its end; `during` acts on it first (time only skips once the result is awaited)."""
    async with stub_worker(env, stubs) as task_queue:
        handle = await env.client.start_workflow(
            PaymentWorkflow.run, req, id=dp.payment_workflow_id(req.payment_id), task_queue=task_queue
        )
        if during is not None:
            await during(handle)
        async with asyncio.timeout(RESULT_TIMEOUT):
            return await handle.result()


async def status_becomes(handle: WorkflowHandle, status: str, timeout: float = 10) -> pt.PaymentState:
    """Polls the `state` query (a user's view of a running payment) until it shows `status`."""
    async with asyncio.timeout(timeout):
        while True:
            state = await handle.query(PaymentWorkflow.state)
            if state is not None and state.status == status:
                return state
            await asyncio.sleep(0.05)


async def approval_view(env: WorkflowEnvironment, payment_id: str, timeout: float = 10) -> ap.ApprovalView:
    """The child approval's state, once it is open (its id is derived from the payment's)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await get_state(env.client, payment_id)
            except RPCError:
                await asyncio.sleep(0.05)


async def decide(env: WorkflowEnvironment, payment_id: str, decision: str, **fields: Any) -> ap.DecisionResult:
    """One decision as the API sends it; approve and edit name the operation's current hash."""
    if decision in ("approve", "edit"):
        fields.setdefault("operation_hash", (await approval_view(env, payment_id)).operation_hash)
    request = ap.REQUEST_MODELS[decision](channel="api", **fields)
    return await send_decision(env.client, payment_id, decision, request)


class Handles(list):
    """A `during` that keeps the workflow's handle, to read its history once it has ended."""

    async def __call__(self, handle: WorkflowHandle) -> None:
        self.append(handle)


def statuses(stubs: Stubs) -> list[str]:
    """The status changes the payment wrote through payments.mark_status, in order."""
    return [change.status for change in stubs.args(pt.ACT_MARK_STATUS)]


def final_change(stubs: Stubs) -> pt.StatusChange:
    return stubs.args(pt.ACT_MARK_STATUS)[-1]


class Gate:
    """An activity answer that waits until the test opens the gate (to act on a payment mid-step)."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    async def __call__(self, _arg: Any) -> Any:
        self.entered.set()
        await self.opened.wait()
        return self.value
