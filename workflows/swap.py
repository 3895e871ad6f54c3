"""SwapWorkflow: quote + guard -> reserve -> [approval] -> re-quote, approve exactly + swap (one step) -> receipt ->
settle both legs; on a refusal or revert once the approve was sent, the allowance back to 0 (exactly once).

A swap is governed like a payment: the same reservation (spending limits, the agent's budget, on the input amount,
before anything is signed: payments.reserve_with_policy), the same approval gate (child ApprovalWorkflow bound to
the operation hash, which for a swap covers its terms: paygent/domain/operation_hash.py) and the same statuses
(payments.mark_status releases the reservation when the swap ends). Chain steps are activities/swaps.py.
"""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

from paygent import search_attributes as sa
from paygent.domain.payment import PAYMENT_TERMINAL, PaymentStatus
from workflows import approval_types as at
from workflows import payment_types as pt
from workflows import swap_types as sw
from workflows.activity_options import CHAIN, DATABASE, SETTLEMENT, SWAP_RECEIPT
from workflows.cancel_update import cancel_reason, outcome_once_terminal, refuse_unless_cancellable
from workflows.parent_progress import tell_parent

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from paygent.domain.approval_policy import choose_tier, needs_approval
    from paygent.domain.approval_state import ApprovalStatus
    from paygent.domain.money import format_amount
    from paygent.domain.operation_hash import Operation, SwapTerms, operation_hash
    from paygent.domain.swap import swap_summary
    from paygent.domain.text import scrub


async def _result(child: workflow.ChildWorkflowHandle) -> at.ApprovalOutcome:
    return await child


class SwapEnded(Exception):
    pass


@workflow.defn(name=sw.WORKFLOW_NAME)
class SwapWorkflow:
    @workflow.init
    def __init__(self, req: sw.SwapRequest) -> None:
        self._req = req
        self._state = sw.SwapState(
            payment_id=req.payment.payment_id, status=PaymentStatus.pending, amount_in=req.payment.amount_atomic
        )
        self._cancel: pt.PaymentCancelRequest | None = None
        self._signing_began = False  # once set, a failure gives the router's allowance back (if it was raised)
        self._timelocked_until: str | None = None  # the child approval's time-lock end, once it started
        self._approval: at.ApprovalProgress | None = None  # the child approval's latest progress
        self._approval_news: list[at.ApprovalProgress] = []  # progress not yet passed on to the parent

    @workflow.query(name=sw.QUERY_STATE)
    def state(self) -> sw.SwapState:
        return self._state

    @workflow.signal(name=at.SIGNAL_TIMELOCKED)
    def approval_timelocked(self, until: str) -> None:
        self._state.details["timelock_until"] = self._timelocked_until = until

    @workflow.signal(name=at.SIGNAL_PROGRESS)
    def approval_progress(self, progress: at.ApprovalProgress) -> None:
        self._approval = progress
        self._approval_news.append(progress)
        if progress.status == ApprovalStatus.time_locked and progress.timelock_until is not None:
            self._state.details["timelock_until"] = self._timelocked_until = progress.timelock_until.isoformat()

    @workflow.update(name=pt.UPDATE_CANCEL)
    async def cancel(self, request: pt.PaymentCancelRequest) -> sw.SwapState:
        """Cancel before signing (as a payment's: the same Update, api/payment_cancel.py sends it)."""
        if self._cancel is None:
            self._cancel = request
        return await outcome_once_terminal(lambda: self._state)

    @cancel.validator
    def _validate_cancel(self, request: pt.PaymentCancelRequest) -> None:
        refuse_unless_cancellable("swap", self._state.status)

    async def _end_if_cancelled(self) -> None:
        if self._cancel is not None:
            await self._end(PaymentStatus.cancelled, cancel_reason(self._cancel), actor=self._cancel.actor)

    @workflow.run
    async def run(self, req: sw.SwapRequest) -> sw.SwapState:
        try:
            await self._swap()
        except SwapEnded:
            pass
        except (ActivityError, ChildWorkflowError) as err:
            if self._state.status in PAYMENT_TERMINAL:
                raise
            await self._fail(_reason(err))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _swap(self) -> None:
        req = self._req
        pay = req.payment
        quote = await self._quote("Quote on the router and check the guards")
        self._state.quoted_amount_out = quote.amount_out
        self._state.min_amount_out = quote.min_amount_out
        self._state.price_impact_bps = quote.price_impact_bps
        workflow.set_current_details(self._summary())
        reserved: pt.ReserveOutcome = await workflow.execute_activity(
            pt.ACT_RESERVE_WITH_POLICY,
            pay,
            result_type=pt.ReserveOutcome,
            **DATABASE,
            summary=f"Check spending limits and reserve {self._amount_in_text()}",
        )
        if not reserved.reserved:
            await self._end(PaymentStatus.refused, f"{reserved.limit}: {reserved.message}")
        await self._end_if_cancelled()
        await self._approval_gate(reserved, quote)
        await self._end_if_cancelled()
        await self._set_status(PaymentStatus.signing)
        self._signing_began = True
        try:
            signed: sw.SignedSwap = await workflow.execute_activity(
                sw.ACT_SIGN_AND_SEND,
                sw.SignRequest(swap=req, min_amount_out=quote.min_amount_out),
                result_type=sw.SignedSwap,
                **CHAIN,
                summary="Re-quote, approve exactly the input, sign and send the swap",
            )
        except ActivityError as err:
            # a re-quote past the bound: nothing was signed, so there is no allowance to give back
            await self._fail(_reason(err))
        self._state.status = PaymentStatus.submitted
        self._state.tx_hash = signed.swap_tx_hash
        self._state.approve_tx_hash = signed.approve_tx_hash
        self._state.details["requoted_amount_out"] = signed.requoted_amount_out
        self._upsert_status()
        receipt: sw.SwapReceipt = await workflow.execute_activity(
            sw.ACT_AWAIT_RECEIPT,
            sw.ReceiptRequest(payment_id=pay.payment_id, tenant_id=pay.tenant_id, step=sw.STEP_SWAP),
            result_type=sw.SwapReceipt,
            **SWAP_RECEIPT,
            summary=f"Wait for the swap's receipt ({signed.swap_tx_hash})",
        )
        if not receipt.succeeded:
            self._state.gas_used = receipt.gas_used
            await self._fail(f"SwapReverted: {receipt.revert_reason or 'reverted'}")
        settled: sw.Settled = await workflow.execute_activity(
            sw.ACT_SETTLE,
            sw.Settlement(
                swap=req,
                receipt=receipt,
                min_amount_out=quote.min_amount_out,
                quoted_amount_out=quote.amount_out,
                price_impact_bps=quote.price_impact_bps,
            ),
            result_type=sw.Settled,
            **SETTLEMENT,
            summary="Book both legs from the receipt's logs and the final status",
        )
        self._state.status = PaymentStatus.confirmed
        self._state.amount_out = settled.amount_out
        self._state.gas_used = settled.gas_used
        self._upsert_status()
        workflow.set_current_details(
            f"Swapped {self._amount_in_text()} for {format_amount(settled.amount_out, req.decimals_out)} "
            f"{req.asset_out} in block {receipt.block_number}"
        )

    async def _quote(self, summary: str) -> sw.QuoteResult:
        req, pay = self._req, self._req.payment
        quote: sw.QuoteResult = await workflow.execute_activity(
            sw.ACT_QUOTE,
            sw.QuoteRequest(
                payment_id=pay.payment_id,
                token_in=pay.token_address,
                token_out=req.token_out,
                amount_in=pay.amount_atomic,
                slippage_bps=req.slippage_bps,
                router=req.router,
                factory=req.factory,
                max_price_impact_bps=req.max_price_impact_bps,
            ),
            result_type=sw.QuoteResult,
            **CHAIN,
            summary=summary,
        )
        if quote.refused_by is not None:
            await self._end(PaymentStatus.refused, f"{quote.refused_by}: {quote.message}")
        return quote

    async def _approval_gate(self, reserved: pt.ReserveOutcome, quote: sw.QuoteResult) -> None:
        policy = reserved.policy
        pay = self._req.payment
        if policy is None or not needs_approval(policy, pay.amount_atomic):
            return
        tier = choose_tier(policy, pay.amount_atomic)
        try:
            operation = self._operation(quote)
        except ValidationError as err:
            await self._fail(f"not a valid operation to approve: {err.errors()[0]['msg']}")
        await self._set_status(
            PaymentStatus.awaiting_approval,
            details={"approvals_needed": tier.approvals_required, "approvers": tier.approvers},
        )
        approval_input = at.ApprovalInput(
            approval_id=pay.payment_id,
            tenant_id=pay.tenant_id,
            operation=operation,
            initiator=pay.requested_by,
            policy=policy,
        )
        child = await workflow.start_child_workflow(
            at.WORKFLOW_NAME,
            approval_input,
            id=at.approval_workflow_id(pay.payment_id),
            result_type=at.ApprovalOutcome,
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            static_summary=at.summary_line(self._summary(), tier.approvals_required, list(tier.approvers)),
            static_details=at.static_details(
                approval_input, tier.approvals_required, list(tier.approvers), tier.timelock_seconds
            ),
        )
        waiting = asyncio.ensure_future(_result(child))
        if workflow.patched(sw.PATCH_PROGRESS):
            await self._follow_approval(waiting)
        else:
            await workflow.wait_condition(lambda: waiting.done() or self._cancel is not None)
        if not waiting.done():  # the swap was cancelled while approvals were pending: so is the approval
            await workflow.get_external_workflow_handle(at.approval_workflow_id(pay.payment_id)).cancel()
        outcome: at.ApprovalOutcome = await waiting
        if self._approval is not None:  # the parent's next status change carries how the approval ended
            update = {"change": "decided", "status": outcome.status, "actor": outcome.decided_by}
            self._approval = self._approval.model_copy(update={**update, "reason": outcome.reason})
        await self._end_if_cancelled()
        if outcome.status != ApprovalStatus.approved:
            await self._end(
                PaymentStatus.cancelled,
                f"approval {outcome.status}: {outcome.reason}",
                actor=outcome.decided_by or "system",
            )
        if operation_hash(outcome.operation) != operation_hash(operation):
            await self._fail("the approved operation is not the swap's: swaps cannot be edited")

    async def _follow_approval(self, waiting: asyncio.Future) -> None:
        """sw.PATCH_PROGRESS: until the approval ends or the swap is cancelled, pass each approval progress on to
        the parent run, and record the time-lock as the status `time_locked`, as a payment does."""
        shown_timelock = None
        while True:

            def moved(shown: str | None = shown_timelock) -> bool:
                return waiting.done() or self._cancel is not None or self._timelocked_until != shown

            await workflow.wait_condition(lambda: moved() or bool(self._approval_news))
            news, self._approval_news = self._approval_news, []
            for progress in news:  # who approved, n of m: pass it on as it lands
                await self._tell_parent("approval", progress)
            if waiting.done() or self._cancel is not None:
                return
            if self._timelocked_until != shown_timelock:
                shown_timelock = self._timelocked_until
                await self._set_status(PaymentStatus.time_locked, details={"until": shown_timelock})

    async def _tell_parent(self, change: pt.PaymentProgressChange, approval: at.ApprovalProgress | None = None) -> None:
        """Push this change to the workflow that started the swap (an agent run), as a payment does.
        Swaps started before sw.PATCH_PROGRESS (and swaps with no parent) send nothing."""
        if workflow.info().parent is not None and workflow.patched(sw.PATCH_PROGRESS):
            await tell_parent(change, self._state, approval or self._approval)

    def _operation(self, quote: sw.QuoteResult) -> Operation:
        req, pay = self._req, self._req.payment
        return Operation(
            chain_id=pay.chain_id,
            wallet_id=pay.wallet_id,
            asset=pay.asset,
            token_address=pay.token_address,
            to=req.router,
            amount_atomic=pay.amount_atomic,
            payment_id=pay.payment_id,
            memo=pay.memo,
            swap=SwapTerms(
                asset_out=req.asset_out,
                token_out=req.token_out,
                min_amount_out=quote.min_amount_out,
                max_price_impact_bps=req.max_price_impact_bps,
                router=req.router,
                quoted_amount_out=quote.amount_out,
                price_impact_bps=quote.price_impact_bps,
            ),
        )

    async def _fail(self, reason: str) -> NoReturn:
        """End `failed`; if an approve was signed, the allowance goes back to 0 first (one transaction, ever)."""
        if self._signing_began:
            pay = self._req.payment
            reset: sw.ResetResult = await workflow.execute_activity(
                sw.ACT_RESET_ALLOWANCE,
                sw.ResetRequest(
                    payment_id=pay.payment_id,
                    tenant_id=pay.tenant_id,
                    wallet_id=pay.wallet_id,
                    wallet_address=pay.wallet_address,
                    chain_id=pay.chain_id,
                    token_in=pay.token_address,
                    router=self._req.router,
                ),
                result_type=sw.ResetResult,
                **SWAP_RECEIPT,
                summary="Set the router's allowance back to 0",
            )
            self._state.reset_tx_hash = reset.tx_hash
        await self._end(PaymentStatus.failed, reason)

    async def _end(self, status: PaymentStatus, reason: str, actor: str = "system") -> NoReturn:
        reason = scrub(reason)
        self._state.failure_reason = reason
        await self._set_status(status, reason=reason, actor=actor)
        workflow.set_current_details(f"{status}: {reason}")
        raise SwapEnded(status)

    async def _set_status(
        self, status: PaymentStatus, *, reason: str | None = None, actor: str = "system", details: Any = None
    ) -> None:
        previous, self._state.status = self._state.status, status
        await workflow.execute_activity(
            pt.ACT_MARK_STATUS,
            pt.StatusChange(
                payment_id=self._req.payment.payment_id,
                status=status,
                reason=reason,
                actor=actor,
                details={
                    **(details or {}),
                    **({"reset_tx_hash": self._state.reset_tx_hash} if self._state.reset_tx_hash else {}),
                },
            ),
            **DATABASE,
            summary=f"Status {previous} -> {status}",
        )
        self._upsert_status()
        await self._tell_parent("status")

    def _upsert_status(self) -> None:
        workflow.upsert_search_attributes([sa.STATUS.value_set(self._state.status)])

    def _amount_in_text(self) -> str:
        pay = self._req.payment
        return f"{format_amount(pay.amount_atomic, pay.decimals)} {pay.asset}"

    def _summary(self) -> str:
        req, pay = self._req, self._req.payment
        return swap_summary(
            format_amount(pay.amount_atomic, pay.decimals),
            pay.asset,
            format_amount(self._state.min_amount_out or 0, req.decimals_out),
            req.asset_out,
            self._state.price_impact_bps or 0,
            req.router_name,
        )


def _reason(err: ActivityError | ChildWorkflowError) -> str:
    cause: BaseException = err
    while isinstance(cause, (ActivityError, ChildWorkflowError)) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type}: {cause.message}" if cause.type else cause.message
    return str(cause)
