"""The `swap` tool in an agent run: a recorded, quoted swap, then a child SwapWorkflow watched until it ends.

Runs in the AgentRunWorkflow's sandbox. `agent.prepare_swap` (activities/agent_swaps.py) checks the grant and the
input and quotes exactly as POST /v1/swaps does, and records the swap with id uuid5(run id, tool call id); the
child is `payment-<that id>` with REJECT_DUPLICATE and ABANDON, as a paying tool's (workflows/agent_child.py), so
no replay or retry swaps twice and a signed swap settles on its own. The SwapWorkflow governs it like a payment
(reservation, limits, budget, approval tiers). The swap pushes its changes to the run as a payment does
(at.PATCH_SWAP_PUSH, PushedProgress in workflows/agent_pay.py): `approval_requested` with who must act,
`approval_progress` as each approval lands, `payment_time_locked`, then `approval_decided`; runs from before the
push follow its row (`awaiting_approval` becomes `approval_requested`, leaving it `approval_decided`). The stream
shows `swap_quoted` before the swap is governed and `swap_settled` once it ends; the model reads the amounts, or
why there are none.
"""

from __future__ import annotations

import asyncio
import json
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
from paygent.domain.payment import PaymentStatus
from paygent.llm.types import ToolCall
from workflows import agent_types as at
from workflows import swap_types as sw
from workflows.agent_child import RUN_CANCELLED, cancelled_by_run, poll_until_final, prepare, start_child
from workflows.agent_pay import PushedProgress
from workflows.failures import failure_reason

with workflow.unsafe.imports_passed_through():
    from paygent.domain.money import format_amount

MAX_SWAP_POLL = timedelta(seconds=30)  # how late the run may notice that the swap waits for an approval


def swap_outcome(req: sw.SwapRequest, final: sw.SwapState) -> at.ToolOutcome:
    """The tool result the model reads: what went in and came out, or why not."""
    pay = req.payment
    data: dict[str, Any] = {
        "swap_id": pay.payment_id,
        "status": final.status,
        "from_asset": pay.asset,
        "to_asset": req.asset_out,
        "amount_in": format_amount(pay.amount_atomic, pay.decimals),
    }
    if final.min_amount_out is not None:
        data["min_amount_out"] = format_amount(final.min_amount_out, req.decimals_out)
    if final.tx_hash:
        data["tx_hash"] = final.tx_hash
    if final.status == PaymentStatus.confirmed and final.amount_out is not None:
        data["amount_out"] = format_amount(final.amount_out, req.decimals_out)
        return at.ToolOutcome(ok=True, text=json.dumps(data))
    data["reason"] = final.failure_reason or f"the swap is {final.status}"
    if final.status == PaymentStatus.refused:
        data["error"] = f"refused by the spending policy: {data['reason']}"
    return at.ToolOutcome(ok=False, text=json.dumps(data))


class SwapTool(PushedProgress):
    noun = "swap"

    async def swap(self, step: int, call: ToolCall) -> at.ToolOutcome:
        inp = self.run.inp
        swap_id = at.agent_payment_id(inp.run_id, call.id)
        bound = {"step": step, "tool_call_id": call.id, "tool": call.name, "payment_id": swap_id}
        awaiting = False
        try:
            prepared = await prepare(at.ACT_PREPARE_SWAP, inp, call, at.PreparedSwap, "Quote and record the swap")
            self.run.check_cancelled()
            req = prepared.request
            if prepared.error or req is None:
                return at.ToolOutcome(ok=False, text=json.dumps({"error": prepared.error or "swap not recorded"}))
            await self.run.emit(RunEventType.swap_quoted, {**bound, "quote": prepared.quote})
            child = await start_child(
                sw.WORKFLOW_NAME,
                req,
                payment_id=req.payment.payment_id,
                result_type=sw.SwapState,
                search_attributes=sa.payment_attributes(req.payment),
                static_summary=str(prepared.quote.get("text") or f"Swap from {prepared.wallet_name}"),
                static_details=f"From wallet {prepared.wallet_name}. Agent run {self.run.inp.run_id}, "
                f"tool call {call.id}, for {req.payment.requested_by}.",
            )
            if child is not None and workflow.patched(at.PATCH_SWAP_PUSH):
                final = await self._follow_pushed(child, bound, swap_id, lambda: self._child_final(child, req))
                if not isinstance(final, sw.SwapState):  # the wait ran out and the swap was cancelled
                    final = self._row_state(req, final)
            else:
                final, awaiting = await poll_until_final(
                    self.run,
                    child,
                    bound,
                    payment_id=req.payment.payment_id,
                    noun=self.noun,
                    max_poll=MAX_SWAP_POLL,
                    child_final=lambda done: self._child_final(done, req),
                    row_final=lambda row: self._row_state(req, row),
                    timeout_summary="swap outcome",
                )
        except (asyncio.CancelledError, ActivityError, ChildWorkflowError) as err:
            if not cancelled_by_run(err):
                raise
            status = await self._cancel(swap_id, RUN_CANCELLED)
            if awaiting or self._awaiting is not None:  # close the approval the stream announced
                decision = self._decision(status) if self._awaiting is not None else "cancelled"
                await self.run.emit(
                    RunEventType.approval_decided,
                    {**bound, "status": status.status, "decision": decision},
                    honour_cancel=False,
                )
            self.run.note_cancelled_payment({"payment_id": swap_id, "payment_status": status.status})
            raise
        settled: dict[str, Any] = {
            **bound,
            "status": final.status,
            "from_asset": req.payment.asset,
            "to_asset": req.asset_out,
            "amount_in": format_amount(req.payment.amount_atomic, req.payment.decimals),
            "amount_out": format_amount(final.amount_out, req.decimals_out) if final.amount_out is not None else None,
            "tx_hash": final.tx_hash,
            "reason": final.failure_reason,
        }
        await self.run.emit(RunEventType.swap_settled, settled)
        return swap_outcome(req, final)

    @staticmethod
    def _child_final(child: workflow.ChildWorkflowHandle, req: sw.SwapRequest) -> sw.SwapState:
        try:
            return child.result()
        except ChildWorkflowError as err:
            status = PaymentStatus.cancelled if is_cancelled_exception(err) else PaymentStatus.failed
            return sw.SwapState(
                payment_id=req.payment.payment_id,
                status=status,
                amount_in=req.payment.amount_atomic,
                failure_reason=failure_reason(err),
            )

    @staticmethod
    def _row_state(req: sw.SwapRequest, row: at.PaymentSnapshot) -> sw.SwapState:
        """A swap followed through its row (its child was started by an earlier execution, or the wait ran out and
        it was cancelled): the row's figures."""
        known = {str(s) for s in PaymentStatus}
        return sw.SwapState(
            payment_id=req.payment.payment_id,
            status=PaymentStatus(row.status) if row.status in known else PaymentStatus.cancelled,
            amount_in=req.payment.amount_atomic,
            tx_hash=row.tx_hash,
            failure_reason=row.failure_reason,
        )
