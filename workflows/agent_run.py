"""AgentRunWorkflow: LLM step -> tool calls -> results -> ... until a final answer or the step limit.

The workflow decides; activities do the I/O. It carries ids and short summaries only: the conversation is in
Postgres, each LLM step is stored under (run_id, step) by `agent.llm_step` (a retry returns the stored answer,
so a finished step is never asked again), and the child payment's id is derived from (run id, tool call id),
so a replay can never pay twice. Every event gets the next sequence number here, and every emit finishes before
the next starts (`WAIT_CANCELLATION_COMPLETED`), so a run's events are gap-free and in order.

Cancellation (`POST /v1/agent-runs/{id}/cancel` -> Temporal workflow cancellation): in-flight activities are
cancelled (the LLM step heartbeats, so it stops), a payment in flight is asked to cancel through its own Update
(see workflows/agent_pay.py), then `agent_failed` with status `cancelled` is emitted and the run ends cancelled.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, is_cancelled_exception

from paygent import search_attributes as sa
from paygent.domain.agent_run import EmitEvent, RunEventType, RunStatus
from paygent.domain.errors import ErrorType
from paygent.llm.types import ToolCall
from workflows import agent_types as at
from workflows import payment_types as pt
from workflows.activity_options import DATABASE, LLM_STEP, TOOL
from workflows.agent_pay import PAYING_TOOLS, PaymentTool
from workflows.agent_swap import SwapTool
from workflows.failures import failure_reason


def tool_error(message: str) -> at.ToolOutcome:
    return at.ToolOutcome(ok=False, text=json.dumps({"error": message}))


@workflow.defn(name=at.WORKFLOW_NAME)
class AgentRunWorkflow:
    @workflow.init
    def __init__(self, inp: at.AgentRunInput) -> None:
        self.inp = inp
        self._status = RunStatus.queued
        self._step = 0
        self._seq = inp.next_seq  # a continuation goes on numbering where the previous run stopped
        self._cancelling = False
        self._cancel_note: dict[str, Any] = {}
        self.payment_news: dict[str, list[pt.PaymentProgress]] = {}  # pushed by child payments, by payment id
        self._payments = PaymentTool(self)
        self._swaps = SwapTool(self)

    @workflow.query(name=at.QUERY_STATE)
    def state(self) -> dict[str, Any]:
        return {"status": self._status, "step": self._step, "next_seq": self._seq}

    @workflow.signal(name=pt.SIGNAL_PROGRESS)
    def payment_progress(self, progress: pt.PaymentProgress) -> None:
        """A child payment's change (approval opened, n of m approved, time-locked, signing...), pushed."""
        self.payment_news.setdefault(progress.payment_id, []).append(progress)

    @workflow.run
    async def run(self, inp: at.AgentRunInput) -> at.AgentRunResult:
        try:
            return await self._loop()
        except (asyncio.CancelledError, ActivityError, ChildWorkflowError) as err:
            if workflow.cancellation_reason() is None or not is_cancelled_exception(err):
                raise
            await self._on_cancelled()
            raise asyncio.CancelledError() from None

    async def _loop(self) -> at.AgentRunResult:
        inp = self.inp
        if inp.next_seq == 1:  # the first execution, not a continuation
            await self.emit(
                RunEventType.agent_started,
                {
                    "thread_id": inp.thread_id,
                    "message_id": inp.message_id,
                    "max_steps": inp.max_steps,
                    "wallet_id": inp.wallet_id,
                    "tools": inp.tools,
                },
            )
        self._status = RunStatus.running
        step = inp.next_step
        while True:
            if step > inp.max_steps:
                await self._fail(
                    f"stopped: the step limit ({inp.max_steps}) was reached before a final answer", step - 1
                )
            if workflow.info().is_continue_as_new_suggested() and workflow.all_handlers_finished():
                workflow.continue_as_new(inp.model_copy(update={"next_step": step, "next_seq": self._seq}))
            self._step = step
            workflow.set_current_details(f"Step {step}: thinking")
            await self.emit(RunEventType.agent_thinking, {"step": step, "status": "started"})
            try:
                result: at.LlmStepResult = await workflow.execute_activity(
                    at.ACT_LLM_STEP,
                    at.LlmStepInput(run_id=inp.run_id, step=step, tools=inp.tools),
                    result_type=at.LlmStepResult,
                    **LLM_STEP,
                    summary=f"LLM step {step}",
                )
            except ActivityError as err:
                if is_cancelled_exception(err):
                    raise
                await self._fail(f"LLM step {step} failed: {failure_reason(err)}", step)
            await self.emit(
                RunEventType.agent_thinking,
                {
                    "step": step,
                    "status": "answered",
                    "provider": result.provider,
                    "model": result.model,
                    "fallback_from": result.fallback_from,
                    "fallback_reason": result.fallback_reason,
                    "tool_calls": [c.name for c in result.tool_calls],
                    "text": result.text_excerpt,
                },
            )
            if not result.tool_calls or not inp.tools:  # a chat turn never runs a tool, whatever the model says
                await self.emit(
                    RunEventType.agent_completed,
                    {"message_id": result.message_id, "steps": step, "understood": result.understood},
                )
                self._finish(RunStatus.completed, f"Answered in {step} step(s)")
                return at.AgentRunResult(
                    run_id=inp.run_id, status=RunStatus.completed, steps=step, answer_excerpt=result.text_excerpt
                )
            for call in result.tool_calls:
                await self._run_tool(step, call)
            step += 1

    async def _run_tool(self, step: int, call: ToolCall) -> None:
        inp = self.inp
        workflow.set_current_details(f"Step {step}: running {call.name}")
        await self.emit(
            RunEventType.tool_executing,
            {"step": step, "tool_call_id": call.id, "tool": call.name, "arguments": call.arguments},
        )
        if call.name == at.SWAP_TOOL and workflow.patched(at.PATCH_SWAP_TOOL):
            outcome = await self._swaps.swap(step, call)
        elif call.name in PAYING_TOOLS:
            outcome = await self._payments.pay(step, call)
        else:
            try:
                outcome = await workflow.execute_activity(
                    at.ACT_RUN_TOOL,
                    at.ToolInvocation(
                        run_id=inp.run_id,
                        tenant_id=inp.tenant_id,
                        user_id=inp.user_id,
                        wallet_id=inp.wallet_id,
                        call=call,
                    ),
                    result_type=at.ToolOutcome,
                    **TOOL,
                    summary=f"Tool {call.name}",
                )
            except ActivityError as err:
                if is_cancelled_exception(err):
                    raise
                outcome = tool_error(f"{call.name} failed: {failure_reason(err)}")
        seq = self._next_seq()
        await workflow.execute_activity(
            at.ACT_RECORD_TOOL_RESULT,
            at.ToolResultRecord(run_id=inp.run_id, step=step, seq=seq, call=call, outcome=outcome),
            **DATABASE,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"Record the {call.name} result",
        )
        self.check_cancelled()

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, self._seq + 1
        return seq

    async def emit(self, kind: RunEventType, data: dict[str, Any], *, honour_cancel: bool = True) -> None:
        """Persist + publish one event. Never cut short by a cancel, which is then raised right after it."""
        await workflow.execute_activity(
            at.ACT_EMIT,
            EmitEvent(run_id=self.inp.run_id, seq=self._next_seq(), type=kind, data=data),
            **DATABASE,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=kind,
        )
        if kind == RunEventType.approval_requested:
            self._status = RunStatus.awaiting_approval
        elif kind == RunEventType.payment_time_locked:
            self._status = RunStatus.time_locked
        elif kind == RunEventType.approval_decided:
            self._status = RunStatus.running
        if honour_cancel:
            self.check_cancelled()

    def check_cancelled(self) -> None:
        """A cancel that arrived while a non-cancellable activity ran is honoured at the next step boundary."""
        if workflow.cancellation_reason() is not None and not self._cancelling:
            raise asyncio.CancelledError()

    def note_cancelled_payment(self, note: dict[str, Any]) -> None:
        self._cancel_note = note

    async def _fail(self, error: str, step: int) -> None:
        self._cancelling = True  # the run is ending: a late cancel must not add a second terminal event
        await self.emit(RunEventType.agent_failed, {"status": RunStatus.failed, "error": error, "step": step})
        self._finish(RunStatus.failed, error)
        raise ApplicationError(error, type=ErrorType.agent_run_failed, non_retryable=True)

    async def _on_cancelled(self) -> None:
        self._cancelling = True
        reason = workflow.cancellation_reason() or ""
        error = "cancelled" + (f": {reason}" if reason else "")
        await self.emit(
            RunEventType.agent_failed,
            {"status": RunStatus.cancelled, "error": error, "step": self._step, **self._cancel_note},
        )
        self._finish(RunStatus.cancelled, error)

    def _finish(self, status: RunStatus, detail: str) -> None:
        self._status = status
        workflow.set_current_details(detail)
        workflow.upsert_search_attributes([sa.STATUS.value_set(status)])
