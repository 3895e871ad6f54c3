"""The paying tools in an agent run (`pay`, `x402_fetch`): a child PaymentWorkflow, watched until it ends.

Runs in the AgentRunWorkflow's sandbox (deterministic: timers and activities only). The payment is recorded by
an activity with id uuid5(run id, tool call id) and started as child `payment-<that id>` with
REJECT_DUPLICATE, so no replay, retry or continue-as-new can pay twice. The child is ABANDONed when the run
closes: a payment already signed must settle on its own, never be terminated half-way.

While the child runs, it pushes each change to the run as a typed `payment_progress` Signal (see
`PaymentProgress`): the approval opening becomes `approval_requested` (bound to this tool call id and its
arguments, with the approvers, how many are needed, the deadline and the time-lock), each approval that lands
`approval_progress` (who, n of m), the time-lock `payment_time_locked` (until), and leaving the approval
`approval_decided` with the approval's own outcome. Runs that were following a payment before the push
existed (`t.PATCH_PAYMENT_PUSH`) keep polling the payment's row when replayed. Whatever the payment ends as
(confirmed, refused, rejected, expired, cancelled, failed) becomes the tool's result for the model to read;
for x402 that includes what the server answered.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ChildWorkflowError,
    is_cancelled_exception,
)

from paygent import search_attributes as sa
from paygent.domain.agent_run import RunEventType
from paygent.domain.approval_state import APPROVAL_FINAL, ApprovalStatus
from paygent.domain.payment import (
    PAYMENT_PAST_APPROVAL,
    PAYMENT_WAITING,
    PAYMENT_WORKFLOW,
    PaymentKind,
    PaymentRequest,
    PaymentStatus,
)
from paygent.llm.types import ToolCall
from workflows import agent_types as at
from workflows import payment_types as pt
from workflows.agent_child import (
    PAYMENT_WAIT_LIMIT,
    RUN_CANCELLED,
    RunHost,
    cancel,
    cancelled_by_run,
    decision_of,
    poll_until_final,
    prepare,
    row_status,
    start_child,
)
from workflows.failures import failure_reason

with workflow.unsafe.imports_passed_through():
    from paygent.domain.money import format_amount

# Polls back off to 10 minutes: an 8-day wait then costs ~1,200 polls (~12k history events, far below the 50k
# limit). The child finishing wakes the run at once whatever the interval; only a mid-way `approval_decided`
# (approved, then a long time-lock) can be reported up to one interval late.
MAX_POLL = timedelta(minutes=10)
PAYING_TOOLS = frozenset({"pay", "x402_fetch", "call_paid_tool"})  # call_paid_tool: x402 over MCP


def decision_from(payment_status: str, approval: pt.ApprovalProgress | None) -> str:
    """How the approval went: its own outcome when known, else what the payment did next (typed, no text)."""
    if approval is not None and approval.status in APPROVAL_FINAL:
        return approval.status
    return ApprovalStatus.approved if payment_status in PAYMENT_PAST_APPROVAL else ApprovalStatus.cancelled


def who_must_act(approval: pt.ApprovalProgress) -> dict:
    return {
        "approval_id": approval.approval_id,
        "approvers": approval.approvers,
        "approvals_needed": approval.approvals_needed,
        "approvals_had": approval.approvals_had,
        "approved_by": approval.approved_by,
        "approval_deadline": approval.expires_at.isoformat(),
        "timelock_seconds": approval.timelock_seconds,
    }


def outcome(req: PaymentRequest, final: at.PaymentSnapshot) -> at.ToolOutcome:
    """The tool result the model reads: what was paid (and fetched), or why not."""
    amount = final.amount_atomic if final.amount_atomic is not None else req.amount_atomic
    data: dict[str, Any] = {
        "payment_id": req.payment_id,
        "status": final.status,
        "asset": req.asset,
        "to": final.to or req.to,
        "amount": format_amount(amount, req.decimals),
    }
    if final.tx_hash:
        data["tx_hash"] = final.tx_hash
    if req.kind == PaymentKind.x402:
        info = final.x402 or {}
        data.update(
            url=req.url,
            max_amount=format_amount(req.max_amount_atomic or req.amount_atomic, req.decimals),
            outcome=info.get("outcome"),
            response_status=info.get("response_status"),
            body=info.get("body_excerpt"),
        )
        if final.status != PaymentStatus.confirmed:  # nothing was paid: no price, no recipient to report
            for key in ("amount", "to"):
                data.pop(key)
        elif info.get("transaction") and "tx_hash" not in data:
            data["tx_hash"] = info["transaction"]
    if final.status == PaymentStatus.confirmed:
        data["block_number"] = final.block_number
        return at.ToolOutcome(ok=True, text=json.dumps(data))
    data["reason"] = final.failure_reason or f"the payment is {final.status}"
    if final.status == PaymentStatus.refused:
        data["error"] = f"refused by the spending policy: {data['reason']}"
    return at.ToolOutcome(ok=False, text=json.dumps(data))


class PushedProgress:
    """Following a child (a payment, a swap) that pushes its changes (`payment_progress` Signals) and turning them
    into the run's events: approval_requested, approval_progress, payment_time_locked, approval_decided."""

    def __init__(self, run: RunHost) -> None:
        self.run = run
        self._awaiting: dict | None = None  # the tool call whose approval was requested and not yet decided
        self._approval: pt.ApprovalProgress | None = None  # the latest approval progress pushed by the child

    noun = "payment"  # what the tool spends through, as the summaries of its row reads and cancels name it

    async def _cancel(self, payment_id: str, reason: str) -> at.PaymentSnapshot:
        return await cancel(self.run, payment_id, reason, self.noun)

    def _decision(self, status: at.PaymentSnapshot) -> str:
        if self._approval is not None:  # pushed: the approval's own outcome
            return decision_from(status.status, self._approval)
        return decision_of(status.status, status.failure_reason)  # a run that polled (before the push)

    async def _follow_pushed(
        self, child: workflow.ChildWorkflowHandle, bound: dict, payment_id: str, final_of: Callable[[], Any]
    ) -> Any:
        """Wait for the child's pushed changes and its end (`final_of()` reads it); turn each change into the run's
        events. Answers what final_of answers, or the row after a cancel when the wait ran out."""
        news = self.run.payment_news.setdefault(payment_id, [])
        self._approval = None
        deadline = workflow.now() + PAYMENT_WAIT_LIMIT
        try:
            while True:
                self.run.check_cancelled()
                remaining = (deadline - workflow.now()).total_seconds()
                try:
                    await workflow.wait_condition(
                        lambda: child.done() or bool(news),
                        timeout=max(remaining, 1.0),
                        timeout_summary="payment outcome",
                    )
                except TimeoutError:  # a clean outcome: cancel if still possible, report where it stands
                    final = await self._cancel(payment_id, f"no outcome within {PAYMENT_WAIT_LIMIT}")
                    break
                while news:  # the child awaits each Signal, so all of them land before its result
                    await self._on_progress(bound, news.pop(0))
                if child.done():
                    final = final_of()
                    break
        finally:
            self.run.payment_news.pop(payment_id, None)
        if self._awaiting is not None:  # ended without a status change after the approval (e.g. it failed)
            self._awaiting = None
            await self.run.emit(
                RunEventType.approval_decided,
                {**bound, "status": final.status, "decision": decision_from(final.status, self._approval)},
            )
        return final

    async def _on_progress(self, bound: dict, p: pt.PaymentProgress) -> None:
        a = self._approval = p.approval or self._approval
        ids = {"payment_id": p.payment_id, "tool_call_id": bound["tool_call_id"]}
        if p.change == "approval" and a is not None:
            if a.change in ("opened", "edited"):
                self._awaiting = bound
                await self.run.emit(
                    RunEventType.approval_requested,
                    {**bound, "status": p.status, **who_must_act(a), "edited": a.change == "edited"},
                )
            elif a.change in ("approved", "revoked"):
                await self.run.emit(
                    RunEventType.approval_progress,
                    {
                        **ids,
                        "decision": a.change,
                        "approver": a.actor,
                        "approvals_had": a.approvals_had,
                        "approvals_needed": a.approvals_needed,
                        "approved_by": a.approved_by,
                        "status": a.status,
                    },
                )
            return
        if p.status == PaymentStatus.time_locked:
            until = a.timelock_until.isoformat() if a is not None and a.timelock_until else None
            await self.run.emit(
                RunEventType.payment_time_locked,
                {**ids, "until": until, "approved_by": a.approved_by if a is not None else []},
            )
        elif self._awaiting is not None and p.status not in PAYMENT_WAITING:
            self._awaiting = None
            await self.run.emit(
                RunEventType.approval_decided, {**bound, "status": p.status, "decision": decision_from(p.status, a)}
            )


class PaymentTool(PushedProgress):
    async def pay(self, step: int, call: ToolCall) -> at.ToolOutcome:
        inp = self.run.inp
        payment_id = at.agent_payment_id(inp.run_id, call.id)  # known before anything is recorded
        try:
            prepared = await prepare(at.ACT_PREPARE_PAYMENT, inp, call, at.PreparedPayment, "Record the payment")
            self.run.check_cancelled()
            if prepared.error or prepared.request is None:
                return at.ToolOutcome(ok=False, text=json.dumps({"error": prepared.error or "payment not recorded"}))
            final = await self._watch(step, call, prepared)
        except (asyncio.CancelledError, ActivityError, ChildWorkflowError) as err:
            if not cancelled_by_run(err):
                raise
            status = await self._cancel(payment_id, RUN_CANCELLED)
            if self._awaiting is not None:  # close the approval the stream announced
                await self.run.emit(
                    RunEventType.approval_decided,
                    {**self._awaiting, "status": status.status, "decision": self._decision(status)},
                    honour_cancel=False,
                )
            self.run.note_cancelled_payment({"payment_id": payment_id, "payment_status": status.status})
            raise
        req = prepared.request
        if (
            req.kind == PaymentKind.x402 and final.x402 is None
        ):  # what the server answered is on the row, not in the state
            final = await row_status(req.payment_id, self.noun)
        return outcome(req, final)

    async def _watch(self, step: int, call: ToolCall, prepared: at.PreparedPayment) -> at.PaymentSnapshot:
        req = prepared.request
        assert req is not None
        child = await start_child(
            PAYMENT_WORKFLOW,
            req,
            payment_id=req.payment_id,
            result_type=pt.PaymentState,
            # the attributes are part of the start-child command: PaygentAmountText behind its patch
            search_attributes=sa.payment_attributes(req, amount_text=workflow.patched(at.PATCH_AMOUNT_TEXT)),
            static_summary=f"Pay {prepared.amount_label} from {prepared.wallet_name} "
            + (f"for {req.url}" if req.kind == PaymentKind.x402 else f"to {req.to}"),
            static_details=f"Agent run {self.run.inp.run_id}, tool call {call.id}, for {req.requested_by}.",
        )
        bound = {
            "step": step,
            "tool_call_id": call.id,
            "tool": call.name,
            "arguments": call.arguments,
            "payment_id": req.payment_id,
        }
        if child is not None and workflow.patched(at.PATCH_PAYMENT_PUSH):
            return await self._follow_pushed(
                child, bound, req.payment_id, lambda: self._child_final(child, req.payment_id)
            )
        final, _ = await poll_until_final(
            self.run,
            child,
            bound,
            payment_id=req.payment_id,
            noun=self.noun,
            max_poll=MAX_POLL,
            child_final=lambda done: self._child_final(done, req.payment_id),
            row_final=lambda row: row,
            awaiting=self._set_awaiting,
        )
        return final

    def _set_awaiting(self, bound: dict | None) -> None:
        self._awaiting = bound

    @staticmethod
    def _child_final(child: workflow.ChildWorkflowHandle, payment_id: str) -> at.PaymentSnapshot:
        try:
            state: pt.PaymentState = child.result()
        except ChildWorkflowError as err:
            status = PaymentStatus.cancelled if is_cancelled_exception(err) else PaymentStatus.failed
            return at.PaymentSnapshot(payment_id=payment_id, status=status, failure_reason=failure_reason(err))
        return at.PaymentSnapshot(
            payment_id=payment_id,
            status=state.status,
            tx_hash=state.tx_hash,
            block_number=state.block_number,
            failure_reason=state.failure_reason,
        )
