"""Helpers for the AgentRunWorkflow unit tests: a scripted model (LLM steps as stub answers), a run started on a
stub worker, and what a user sees of it: its result or failure, its `state` query, its events in order."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from paygent.domain import agent_run as ar
from paygent.domain import payment as dp
from paygent.llm.types import ToolCall
from tests.workflows.unit.payments import RESULT_TIMEOUT, During
from tests.workflows.unit.stubs import RECIPIENT, Stubs, stub_worker
from workflows import agent_types as at
from workflows import payment_types as pt
from workflows.agent_run import AgentRunWorkflow
from workflows.payment import PaymentWorkflow


def cancels_the_payment(env: WorkflowEnvironment):
    """An agent.cancel_payment answer that does what the activity does: the payment's own `cancel` Update."""

    async def cancel(c: at.CancelPayment) -> at.PaymentSnapshot:
        handle = env.client.get_workflow_handle(dp.payment_workflow_id(c.payment_id))
        request = pt.PaymentCancelRequest(actor=c.actor, channel="temporal", reason=c.reason)
        state = await handle.execute_update(PaymentWorkflow.cancel, request)
        return at.PaymentSnapshot(payment_id=c.payment_id, status=state.status, failure_reason=state.failure_reason)

    return cancel


def run_input(**over: Any) -> at.AgentRunInput:
    fields: dict[str, Any] = dict(
        run_id=str(uuid.uuid4()),
        tenant_id=str(uuid.uuid4()),
        user_id=str(uuid.uuid4()),
        user_name="alice",
        thread_id=str(uuid.uuid4()),
        message_id=str(uuid.uuid4()),
        wallet_id=str(uuid.uuid4()),
    )
    return at.AgentRunInput(**{**fields, **over})


def calls_tools(step: int, *calls: ToolCall) -> at.LlmStepResult:
    """A model step that asks for tools (the scripted model's answer to agent.llm_step)."""
    names = ", ".join(c.name for c in calls)
    return at.LlmStepResult(step=step, message_id=f"m{step}", tool_calls=list(calls), provider="offline", model=names)


def pay_call(amount: str, call_id: str = "call-pay") -> ToolCall:
    return ToolCall(id=call_id, name="pay", arguments={"to": RECIPIENT, "amount": amount, "asset": "USDC"})


@dataclass
class Ended:
    """How a run ended, as its client and its `state` query saw it."""

    result: at.AgentRunResult | None
    error: WorkflowFailureError | None
    state: dict[str, Any]


async def run_agent(
    env: WorkflowEnvironment, inp: at.AgentRunInput, stubs: Stubs, during: During | None = None
) -> Ended:
    async with stub_worker(env, stubs) as task_queue:
        handle = await env.client.start_workflow(
            AgentRunWorkflow.run, inp, id=at.agent_workflow_id(inp.run_id), task_queue=task_queue
        )
        if during is not None:
            await during(handle)
        try:
            async with asyncio.timeout(RESULT_TIMEOUT):
                result, error = await handle.result(), None
        except WorkflowFailureError as err:
            result, error = None, err
        return Ended(result, error, await handle.query(AgentRunWorkflow.state))


async def run_status_becomes(handle: WorkflowHandle, status: str, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            state = await handle.query(AgentRunWorkflow.state)
            if state["status"] == status:
                return state
            await asyncio.sleep(0.05)


def events(stubs: Stubs) -> list[ar.EmitEvent]:
    return stubs.args(at.ACT_EMIT)


def kinds(stubs: Stubs) -> list[str]:
    return [e.type for e in events(stubs)]


def event(stubs: Stubs, kind: str) -> dict[str, Any]:
    [found] = [e.data for e in events(stubs) if e.type == kind]
    return found


def seqs(stubs: Stubs) -> list[int]:
    """Sequence numbers of the run's events and tool results (each tool result is a `tool_completed` event)."""
    return sorted([e.seq for e in events(stubs)] + [r.seq for r in stubs.args(at.ACT_RECORD_TOOL_RESULT)])
