"""PaymentWorkflow: [x402: ask the price] -> reserve -> [approval] -> sign once -> send -> receipt -> settle.

Exactly-once on chain rests on the activities: signing persists the signed transaction before anything is
broadcast and returns the same one on every retry, and broadcasting re-sends those same bytes.

Reading guide: `run` is the whole process, one step a line. Every way a payment can end early (refused by a
limit, an approval that did not end `approved`, a cancel, an x402 server that asked nothing or settled nothing)
goes through `_end`, which records the final status (releasing or holding the reservation) and raises
`PaymentEnded`; `run` returns its state. Activity options come from workflows/activity_options.py.
"""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    RetryState,
    is_cancelled_exception,
)
from temporalio.exceptions import TimeoutError as ActivityTimeout

from paygent import search_attributes as sa
from paygent.domain.channels import Channel
from paygent.domain.payment import (
    CANCEL_REFUSED,
    PAYMENT_CANCELLABLE,
    PAYMENT_TERMINAL,
    PAYMENT_WORKFLOW,
    ZERO_ADDRESS,
    PaymentKind,
    PaymentRequest,
    PaymentStatus,
)
from workflows import approval_types as ap
from workflows import payment_types as pt
from workflows import x402_types as x
from workflows.activity_options import (
    CHAIN,
    DATABASE,
    LOCAL_ATTEMPT,
    RECEIPT_FOLLOWED,
    RECEIPT_WAIT,
    SETTLEMENT,
    X402_PROBE,
    X402_SEND,
    X402_SIGN,
)
from workflows.cancel_update import cancel_reason, outcome_once_terminal, refuse_unless_cancellable
from workflows.chain_types import RECEIPT_WAIT_ACTIVITY_ID
from workflows.failures import StepFailed, failure_reason
from workflows.parent_progress import tell_parent

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from paygent.domain.approval_policy import ApprovalPolicy, choose_tier, needs_approval
    from paygent.domain.approval_state import ApprovalStatus
    from paygent.domain.errors import ErrorType
    from paygent.domain.money import format_amount
    from paygent.domain.operation_hash import Operation, operation_hash
    from paygent.domain.text import scrub

# workflow.patched ids: running workflows started before these changes replay their old commands
PATCH_RECEIPT_WAIT = "receipt-wait-leaves-submitted"
PATCH_HOLD_AUTHORIZATION = "x402-hold-reservation-until-valid-before"
PATCH_RECEIPT_FOLLOWED = "receipt-wait-followed"  # the receipt wait is answered by the chain follower
# Payments started with `local_steps` (PAYGENT_LOCAL_STEPS) take their short steps (database writes, signing,
# sending) as local activities: the worker runs them inside the workflow task and records a marker, instead of
# a round trip through the server for each (issue 11: 8 activities cost 8 server round trips). Every step was
# already idempotent (retries re-send the stored bytes), which is what a local activity's re-run after a crash
# needs. Off by default: on a saturated worker a local activity that outlasts the workflow task timeout gets
# its task timed out and retried (seen with 1,000 payments at once on 2 shared cores), which regular
# activities never suffer. The patch keeps runs from before it replayable.
LOCAL_STEPS = "payment-local-short-steps"
# One activity per side-effect boundary, each recording its own status change: reserve with the policy read;
# sign, store, send and record `submitted` in one step (no `signing` mark of its own). A local step that has not
# finished within LOCAL_ATTEMPT's budget (well inside the workflow task timeout) is taken again as a regular
# activity, so a saturated worker never holds a workflow task past its timeout on a local activity.
PATCH_FOLDED_STEPS = "payment-folded-steps"
# A cancellation sent with Temporal's own tools ends the payment `cancelled` before signing (the row, the
# reservation and the audit follow) and is refused after; before, it closed the workflow and orphaned the row.
PATCH_TEMPORAL_CANCEL = "payment-honours-temporal-cancel"
REFUSED_BY_SERVER = (ErrorType.x402_refused, ErrorType.x402_rejected)


class PaymentEnded(Exception):
    """Raised by `_end` once the final status is recorded: the payment stops here with this state."""

    def __init__(self, state: pt.PaymentState) -> None:
        super().__init__(state.status)
        self.state = state


@workflow.defn(name=PAYMENT_WORKFLOW)
class PaymentWorkflow:
    @workflow.init
    def __init__(self, req: PaymentRequest) -> None:
        self._req = req  # the terms being executed: x402 fills in price and recipient, an edit may change them
        self._state = pt.PaymentState(payment_id=req.payment_id, status=PaymentStatus.pending)
        self._label = _label(req)
        self._cancel: pt.PaymentCancelRequest | None = None
        self._timelocked_until: str | None = None  # signalled by the child approval when its time-lock starts
        self._approval: ap.ApprovalProgress | None = None  # the child approval's latest progress
        self._approval_news: list[ap.ApprovalProgress] = []  # progress not yet passed on to the parent
        self._authorization_valid_before: int | None = None  # set once an x402 authorization is signed
        self._folded = False  # PATCH_FOLDED_STEPS: decided once, when the payment starts
        self._policy: ApprovalPolicy | None = None  # read with the reservation (folded steps)
        self._stopping = False  # a Temporal cancel before signing is stopping the steps

    @workflow.query(name=pt.QUERY_STATE)
    def state(self) -> pt.PaymentState:
        return self._state

    @workflow.signal(name=ap.SIGNAL_TIMELOCKED)
    def approval_timelocked(self, until: str) -> None:
        """What approvals started before `approval_progress` existed send when their time-lock starts."""
        self._timelocked_until = until

    @workflow.signal(name=ap.SIGNAL_PROGRESS)
    def approval_progress(self, progress: ap.ApprovalProgress) -> None:
        self._approval = progress
        self._approval_news.append(progress)
        if progress.status == ApprovalStatus.time_locked and progress.timelock_until is not None:
            self._timelocked_until = progress.timelock_until.isoformat()

    @workflow.update(name=pt.UPDATE_CANCEL)
    async def cancel(self, request: pt.PaymentCancelRequest) -> pt.PaymentState:
        """Cancel before signing starts; waits for the workflow to record the outcome, then returns it."""
        if self._cancel is None:
            self._cancel = request
        return await outcome_once_terminal(lambda: self._state)

    @cancel.validator
    def _validate_cancel(self, request: pt.PaymentCancelRequest) -> None:
        refuse_unless_cancellable(
            "payment", self._state.status, " (once a transaction is signed and broadcast it cannot be recalled)"
        )

    @workflow.run
    async def run(self, req: PaymentRequest) -> pt.PaymentState:
        workflow.set_current_details(f"Pay {self._label}")
        # The steps run in a task of their own so that a Temporal cancellation reaches `run` first, which decides
        # (see `_through_cancellation`), instead of landing in whichever step was awaiting.
        await self._through_cancellation(asyncio.ensure_future(self._steps()))
        # a pending `cancel` update returns the final state: let it finish before the workflow closes
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _steps(self) -> None:
        try:
            try:
                await self._pay()
            except (ActivityError, StepFailed, ChildWorkflowError) as err:
                # A deterministic failure (the database refused a value; the approval workflow itself failed)
                # would fail the same way on every retry: end cleanly instead, `failed` with the reason, the
                # reservation released and the status change audited (by payments.mark_status).
                if not _final_failure(err) or self._state.status in PAYMENT_TERMINAL:
                    raise
                await self._end(PaymentStatus.failed, reason=failure_reason(err))
        except PaymentEnded:
            pass

    async def _through_cancellation(self, steps: asyncio.Future[None]) -> None:
        """Await the steps; a cancellation sent with Temporal's tools (`temporal workflow cancel`, the Web UI's
        "Request Cancellation", `handle.cancel()`) is what the operator meant:

        - before signing: the steps stop, the payment ends `cancelled` (reservation released, audited with
          channel `temporal`) and the workflow closes cancelled;
        - once signing has begun the money may already be moving: the request is audited as refused
          (`payment.cancel_refused`, with the reason) and the payment carries on to settle;
        - a payment already ending (its final status chosen) just finishes.
        Runs from before the patch take the cancellation where the steps were, as they did.
        """
        while True:
            try:
                await asyncio.shield(steps)
                return
            except asyncio.CancelledError:
                if steps.done():
                    raise
                _uncancel()
                if not workflow.patched(PATCH_TEMPORAL_CANCEL):
                    steps.cancel()
                    continue
            asked = workflow.cancellation_reason() or "no reason given"
            if self._state.status in PAYMENT_CANCELLABLE:
                await self._stop_before_signing(steps, asked)
                raise asyncio.CancelledError(asked)
            if self._state.status not in PAYMENT_TERMINAL:
                await self._refuse_cancel(asked)

    async def _stop_before_signing(self, steps: asyncio.Future[None], asked: str) -> None:
        self._stopping = True
        steps.cancel()
        try:
            await steps
        except (asyncio.CancelledError, Exception) as err:  # the steps stopped where they were
            workflow.logger.info("payment steps stopped by a Temporal cancel: %r", err)
        if self._state.status not in PAYMENT_TERMINAL:
            try:
                await self._end(
                    PaymentStatus.cancelled,
                    reason=f"cancelled with Temporal: {asked}",
                    actor="temporal",
                    channel=Channel.temporal,
                )
            except PaymentEnded:
                pass
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _refuse_cancel(self, asked: str) -> None:
        why = (
            f"payment is {self._state.status}: once signing has begun the transaction may already be on its way, "
            "so it cannot be recalled; the payment carries on to settle"
        )
        workflow.logger.warning("Temporal cancel refused (%s): %s", asked, why)
        workflow.set_current_details(f"Pay {self._label}: cancel refused ({why})")
        await workflow.execute_activity(
            pt.ACT_RECORD_EVENT,
            pt.PaymentEvent(
                payment_id=self._req.payment_id,
                action=CANCEL_REFUSED,
                actor="temporal",
                channel=Channel.temporal,
                data={"reason": why, "asked": asked, "status": self._state.status},
            ),
            **DATABASE,
            summary="Record the refused cancel",
        )

    async def _pay(self) -> None:
        """The whole process; returns when the payment is settled or left to the reconciler."""
        self._folded = workflow.patched(PATCH_FOLDED_STEPS)
        if self._req.kind == PaymentKind.x402:  # the price and recipient come from the server's 402 answer
            self._req = await self._x402_terms(self._req)
            self._label = _label(self._req)
        await self._reserve(self._req, f"Check spending limits and reserve {self._label}")
        self._req = await self._approval_gate(self._req)
        if self._cancel is not None:
            await self._end_cancelled()
        try:
            # from here on the payment is not cancellable: the status changes before any await
            if self._folded and self._req.kind == PaymentKind.transfer:  # signing records its own status
                await self._show_status(PaymentStatus.signing)
                receipt = await self._sign_and_send_transfer(self._req)
            else:
                await self._set_status(PaymentStatus.signing)
                if self._req.kind == PaymentKind.x402:
                    receipt = await self._execute_x402(self._req)
                else:
                    receipt = await self._execute_transfer(self._req)
        except (ActivityError, StepFailed) as err:
            cause = err.cause
            refused = isinstance(cause, ApplicationError) and cause.type in REFUSED_BY_SERVER
            await self._end(PaymentStatus.refused if refused else PaymentStatus.failed, reason=failure_reason(err))
        if receipt.pending and workflow.patched(PATCH_RECEIPT_WAIT):
            self._leave_to_reconciler(receipt)
            return
        await self._settle(self._req, receipt)

    async def _reserve(self, req: PaymentRequest, summary: str) -> None:
        """Reserve the amount against the wallet's (and the agent's) spending policy, or end `refused`. With
        folded steps the first reservation also reads the approval policy, in the same transaction."""
        with_policy = self._folded and self._policy is None
        reserved: pt.ReserveOutcome = await self._step(
            pt.ACT_RESERVE_WITH_POLICY if with_policy else pt.ACT_RESERVE,
            req,
            result_type=pt.ReserveOutcome,
            **DATABASE,
            summary=summary,
        )
        if with_policy:
            self._policy = reserved.policy
        if not reserved.reserved:
            await self._end(PaymentStatus.refused, reason=f"{reserved.limit}: {reserved.message}")

    def _leave_to_reconciler(self, receipt: pt.ReceiptResult) -> None:
        """The receipt wait gave up: the signed transaction may still land, so the payment is not `failed`.
        It stays `submitted` with its reservation; the reconciler re-sends the same bytes and settles it."""
        self._state.tx_hash = receipt.tx_hash or self._state.tx_hash
        workflow.set_current_details(f"Submitted {self._label}: no receipt yet; the reconciler settles it")

    async def _approval_gate(self, req: PaymentRequest) -> PaymentRequest:
        """M-of-N approval (and its time-lock) when the policy's tier for this amount asks for it.

        Runs the ApprovalWorkflow as a child bound to the operation's hash; returns the operation to execute
        (an edit may have changed amount, recipient or memo: the reservation is then taken again). An approval
        that does not end `approved` ends the payment `cancelled`.
        """
        policy = self._policy or await self._step(
            ap.ACT_LOAD_POLICY,
            ap.PolicyRequest(tenant_id=req.tenant_id, wallet_id=req.wallet_id),
            result_type=ApprovalPolicy,
            **DATABASE,
            summary="Load the approval policy",
        )
        if not needs_approval(policy, req.amount_atomic) or self._cancel is not None:
            return req
        tier = choose_tier(policy, req.amount_atomic)
        try:
            operation = _operation(req)
        except ValidationError as err:  # terms the edge should have refused: end cleanly, never wedge the workflow
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            await self._end(PaymentStatus.failed, reason=f"not a valid operation to approve: {problems}")
        await self._set_status(
            PaymentStatus.awaiting_approval,
            details={
                "approvals_needed": tier.approvals_required,
                "approvers": tier.approvers,
                "timelock_seconds": tier.timelock_seconds,
            },
        )
        workflow.set_current_details(
            f"Pay {self._label}: waiting, {ap.needed_from(tier.approvals_required, list(tier.approvers))}"
        )
        child_id = ap.approval_workflow_id(req.payment_id)
        approval_input = ap.ApprovalInput(
            approval_id=req.payment_id,
            tenant_id=req.tenant_id,
            operation=operation,
            initiator=req.requested_by,
            policy=policy,
        )
        child = await workflow.start_child_workflow(
            ap.WORKFLOW_NAME,
            approval_input,
            id=child_id,
            result_type=ap.ApprovalOutcome,
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            static_summary=ap.summary_line(self._label, tier.approvals_required, list(tier.approvers)),
            static_details=ap.static_details(
                approval_input, tier.approvals_required, list(tier.approvers), tier.timelock_seconds
            ),
        )
        outcome = await self._follow_approval(child, child_id)
        if outcome.status != ApprovalStatus.approved:
            if self._cancel is not None:
                await self._end_cancelled()
            await self._end(
                PaymentStatus.cancelled,
                reason=f"approval {outcome.status}: {outcome.reason}",
                actor=outcome.decided_by or "system",
            )
        final = outcome.operation
        if operation_hash(final) != outcome.operation_hash:
            await self._end(PaymentStatus.failed, reason="approved operation does not match its hash")
        edited = req.model_copy(update={"to": final.to, "amount_atomic": final.amount_atomic, "memo": final.memo})
        if edited != req:  # the initiator edited it while pending: the new terms must fit the limits too
            await self._reserve(edited, "Reserve again for the edited operation")
            self._label = _label(edited)
        who = ", ".join(a.on_behalf_of or a.approver for a in outcome.approvals)
        workflow.set_current_details(f"Pay {self._label}: approved by {who}")
        return edited

    async def _follow_approval(self, child: workflow.ChildWorkflowHandle, child_id: str) -> ap.ApprovalOutcome:
        """Pass the approval's progress on (to the parent run, and the time-lock to this payment's status) until
        it ends; a cancel of the payment cancels the approval. No timeout of its own: the approval's timeout and
        time-lock are durable timers of the child, which always ends."""
        waiting = asyncio.ensure_future(_result(child))
        shown_timelock = None
        while True:

            def moved(shown: str | None = shown_timelock) -> bool:
                return (
                    waiting.done()
                    or self._cancel is not None
                    or self._timelocked_until != shown
                    or bool(self._approval_news)
                )

            await workflow.wait_condition(moved)
            news, self._approval_news = self._approval_news, []
            for progress in news:  # who approved, n of m: pass it on as it lands
                await self._tell_parent("approval", progress)
            if waiting.done() or self._cancel is not None:
                break
            if self._timelocked_until == shown_timelock:
                continue
            shown_timelock = self._timelocked_until
            await self._set_status(PaymentStatus.time_locked, details={"until": shown_timelock})
            workflow.set_current_details(f"Pay {self._label}: approved, time-locked until {shown_timelock}")
        if not waiting.done():  # the payment was cancelled while approvals were pending: so is the approval
            await workflow.get_external_workflow_handle(child_id).cancel()
        outcome: ap.ApprovalOutcome = await waiting
        if self._approval is not None:  # the parent's next status change carries how the approval ended
            self._approval = self._approval.model_copy(
                update={
                    "change": "decided",
                    "status": outcome.status,
                    "actor": outcome.decided_by,
                    "reason": outcome.reason,
                }
            )
        return outcome

    async def _execute_transfer(self, req: PaymentRequest) -> pt.ReceiptResult:
        signed: pt.SignedTransfer = await self._step(
            pt.ACT_SIGN, req, result_type=pt.SignedTransfer, **CHAIN, summary=f"Sign transfer of {self._label}"
        )
        self._state.tx_hash = signed.tx_hash
        await self._step(pt.ACT_BROADCAST, req.payment_id, **CHAIN, summary=f"Broadcast {signed.tx_hash}")
        await self._set_status(PaymentStatus.submitted, details={"tx_hash": signed.tx_hash})
        return await self._await_receipt(req, signed.tx_hash)

    async def _await_receipt(self, req: PaymentRequest, tx_hash: str) -> pt.ReceiptResult:
        """Wait for the receipt. Since `receipt-wait-followed` the activity registers the wait and the chain's
        follower completes it (workflows/chain.py): no heartbeat, a fixed activity id the follower can address,
        and a bounded whole wait that, when it passes, leaves the payment to the reconciler."""
        if not workflow.patched(PATCH_RECEIPT_FOLLOWED):
            return await workflow.execute_activity(
                pt.ACT_AWAIT_RECEIPT,
                req,
                result_type=pt.ReceiptResult,
                **RECEIPT_WAIT,
                summary=f"Wait for receipt of {tx_hash}",
            )
        try:
            return await workflow.execute_activity(
                pt.ACT_AWAIT_RECEIPT,
                req,
                result_type=pt.ReceiptResult,
                activity_id=RECEIPT_WAIT_ACTIVITY_ID,
                **RECEIPT_FOLLOWED,
                summary=f"Wait for receipt of {tx_hash} (the chain follower answers)",
            )
        except ActivityError as err:
            # the whole wait's bound passed (no answer, or attempts that kept failing): the signed transaction
            # may still land, so the payment is not failed; a final verdict (NonceConflict) still ends it
            if not (isinstance(err.cause, ActivityTimeout) or err.retry_state == RetryState.TIMEOUT):
                raise
        return await workflow.execute_activity(
            pt.ACT_RECEIPT_GAVE_UP,
            req,
            result_type=pt.ReceiptResult,
            **DATABASE,
            summary="No receipt within the wait: leave it to the reconciler",
        )

    async def _sign_and_send_transfer(self, req: PaymentRequest) -> pt.ReceiptResult:
        """One step signs (the bytes stored first), sends and records `submitted`; then the receipt wait."""
        signed: pt.SignedTransfer = await self._step(
            pt.ACT_SIGN_AND_SEND,
            req,
            result_type=pt.SignedTransfer,
            **CHAIN,
            summary=f"Sign and send the transfer of {self._label}",
        )
        self._state.tx_hash = signed.tx_hash
        await self._show_status(PaymentStatus.submitted)
        return await self._await_receipt(req, signed.tx_hash)

    def _x402_policy(self, req: PaymentRequest) -> x.X402Policy:
        return x.X402Policy(
            max_amount_atomic=req.max_amount_atomic or req.amount_atomic,
            allowed_assets=[req.token_address],
            network=f"eip155:{req.chain_id}",
        )

    async def _x402_terms(self, req: PaymentRequest) -> PaymentRequest:
        """Ask the URL its price (nothing is signed); refuse what the wallet's x402 policy rules out."""
        if req.url is None:  # the edge requires one; a request without it is refused, never retried
            await self._end(PaymentStatus.refused, reason="url: an x402 payment needs the URL to pay for")
        try:
            probe: x.X402ProbeResult = await self._step(
                x.ACT_X402_PROBE,
                x.X402ProbeRequest(
                    payment_id=req.payment_id, tenant_id=req.tenant_id, url=req.url, policy=self._x402_policy(req)
                ),
                result_type=x.X402ProbeResult,
                **X402_PROBE,
                summary=f"Ask {req.url} for its price",
            )
        except (ActivityError, StepFailed) as err:
            if self._stopping:  # cut short by a Temporal cancel: `run` ends the payment `cancelled`
                raise
            await self._end(PaymentStatus.refused, reason=failure_reason(err))
        if not probe.payment_required:
            await self._end(
                PaymentStatus.cancelled,
                reason=f"{req.url} answered {probe.status_code} without asking for payment: nothing was paid",
            )
        return req.model_copy(update={"amount_atomic": probe.amount_atomic, "to": probe.pay_to})

    async def _execute_x402(self, req: PaymentRequest) -> pt.ReceiptResult:
        """Sign one EIP-3009 authorization (stored before sending), then send it; retries re-send the same."""
        signed: x.X402SignResult = await self._step(
            x.ACT_X402_SIGN,
            x.X402SignRequest(
                payment_id=req.payment_id,
                tenant_id=req.tenant_id,
                wallet_id=req.wallet_id,
                policy=self._x402_policy(req),
            ),
            result_type=x.X402SignResult,
            **X402_SIGN,
            summary=f"Sign the x402 authorization for {self._label}",
        )
        self._authorization_valid_before = signed.valid_before
        await self._set_status(PaymentStatus.submitted)
        sent: x.X402SendResult = await self._step(
            x.ACT_X402_SEND,
            x.X402SendRequest(payment_id=req.payment_id, tenant_id=req.tenant_id),
            result_type=x.X402SendResult,
            **X402_SEND,
            summary=f"Send the paid request to {req.url}",
        )
        if sent.outcome not in x.SETTLED_OUTCOMES:
            await self._end(
                PaymentStatus.cancelled,
                reason=f"{req.url} answered {sent.status_code} without settling: nothing was paid",
            )
        return pt.ReceiptResult(
            tx_hash=sent.transaction, succeeded=True, block_number=None, gas_used=0, revert_reason=None
        )

    async def _settle(self, req: PaymentRequest, receipt: pt.ReceiptResult) -> None:
        settlement = pt.Settlement(
            payment_id=req.payment_id,
            tenant_id=req.tenant_id,
            wallet_id=req.wallet_id,
            to=req.to,
            asset=req.asset,
            amount_atomic=req.amount_atomic,
            receipt=receipt,
        )
        await self._step(pt.ACT_SETTLE, settlement, **SETTLEMENT, summary="Write ledger entries and the final status")
        self._state.block_number = receipt.block_number
        self._state.tx_hash = receipt.tx_hash or self._state.tx_hash
        if receipt.succeeded:
            self._state.status = PaymentStatus.confirmed
            workflow.set_current_details(
                f"Paid {self._label}" + (f" in block {receipt.block_number}" if receipt.block_number else "")
            )
        else:
            self._state.status = PaymentStatus.failed
            self._state.failure_reason = f"TransferReverted: {receipt.revert_reason}"
            workflow.set_current_details(f"Reverted on chain: {receipt.revert_reason}")
        self._upsert_status()

    async def _step(self, activity: str, arg: Any, **options: Any) -> Any:
        """One short step: a local activity when the payment asked for it (and has the patch), else regular.

        A local activity's failure may reach the workflow unwrapped (the ApplicationError itself), a regular
        one's as an ActivityError: either way it leaves here as `StepFailed` with the activity's own error as its
        cause, so every caller handles one shape (a cancellation passes through as it came). With folded steps a
        local attempt is bounded (LOCAL_ATTEMPT); one that did not finish in time, or failed in a way a retry may
        fix, is taken again as a regular activity (every step is idempotent)."""
        try:
            if not (self._req.local_steps and workflow.patched(LOCAL_STEPS)):
                return await workflow.execute_activity(activity, arg, **options)
            if self._folded:
                try:
                    return await workflow.execute_local_activity(activity, arg, **{**options, **LOCAL_ATTEMPT})
                except (ActivityError, ApplicationError, ActivityTimeout) as err:
                    cause = err.cause if isinstance(err, ActivityError) else err
                    if isinstance(cause, ApplicationError) and cause.non_retryable:
                        raise StepFailed(activity, final=True) from cause
                    workflow.logger.info("local step %s did not finish (%s): taken again as an activity", activity, err)
                    return await workflow.execute_activity(activity, arg, **options)
            try:
                return await workflow.execute_local_activity(activity, arg, **options)
            except (ApplicationError, ActivityTimeout) as err:
                final = isinstance(err, ApplicationError) and err.non_retryable
                raise StepFailed(activity, final=final) from err
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            raise StepFailed(activity, final=err.retry_state == RetryState.NON_RETRYABLE_FAILURE) from err.cause

    async def _end_cancelled(self) -> NoReturn:
        assert self._cancel is not None
        await self._end(PaymentStatus.cancelled, reason=cancel_reason(self._cancel), actor=self._cancel.actor)

    async def _set_status(
        self,
        status: PaymentStatus,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        actor: str = "system",
        hold_reservation: bool = False,
        channel: Channel = Channel.system,
    ) -> None:
        previous, self._state.status = self._state.status, status
        await self._step(
            pt.ACT_MARK_STATUS,
            pt.StatusChange(
                payment_id=self._req.payment_id,
                status=status,
                reason=reason,
                actor=actor,
                details=details or {},
                hold_reservation=hold_reservation,
                channel=channel,
            ),
            **DATABASE,
            summary=f"Status {previous} -> {status}",
        )
        self._upsert_status()
        await self._tell_parent("status")

    async def _show_status(self, status: PaymentStatus) -> None:
        """A status change that the step itself records in the database: shown in the workflow's state and
        search attribute, and passed on to the parent, with no activity of its own."""
        self._state.status = status
        self._upsert_status()
        await self._tell_parent("status")

    async def _tell_parent(self, change: pt.PaymentProgressChange, approval: ap.ApprovalProgress | None = None) -> None:
        """Push this change to the workflow that started the payment (an agent run), so it never polls.
        Payments started before the patch (and payments with no parent) send nothing."""
        if workflow.info().parent is not None and workflow.patched(pt.PATCH_PROGRESS):
            await tell_parent(change, self._state, approval or self._approval)

    async def _end(
        self, status: PaymentStatus, *, reason: str, actor: str = "system", channel: Channel = Channel.system
    ) -> NoReturn:
        """Record the final status (audited; the reservation released, or held while a signed x402 authorization
        may still settle) and stop the payment here."""
        reason = scrub(reason)  # a reason quoting a refused value must still be storable
        hold = self._authorization_valid_before is not None and workflow.patched(PATCH_HOLD_AUTHORIZATION)
        if hold:  # the server holds a signed authorization it may still settle: keep the budget until it expires
            reason += (
                f" (the signed authorization stays valid until {self._authorization_valid_before}: "
                "the reservation is held until then, and a late settlement is reconciled)"
            )
        self._state.failure_reason = reason
        await self._set_status(status, reason=reason, actor=actor, hold_reservation=hold, channel=channel)
        workflow.set_current_details(f"{status}: {reason}")
        raise PaymentEnded(self._state)

    def _upsert_status(self) -> None:
        workflow.upsert_search_attributes([sa.STATUS.value_set(self._state.status)])


def _uncancel() -> None:
    """Clear the caught cancellation from the running task (Python 3.11+), so later timeouts behave."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def _operation(req: PaymentRequest) -> Operation:
    """The operation approvers approve (its hash binds their decisions). Operation validates the terms (the
    address, say): the caller must catch ValidationError, which would otherwise fail the workflow task forever."""
    return Operation(
        chain_id=req.chain_id,
        wallet_id=req.wallet_id,
        asset=req.asset,
        token_address=req.token_address,
        to=req.to,
        amount_atomic=req.amount_atomic,
        payment_id=req.payment_id,
        memo=req.memo,
    )


def _label(req: PaymentRequest) -> str:
    """How summaries and details name the payment: amount, asset, recipient (and the URL once it is priced)."""
    label = f"{format_amount(req.amount_atomic, req.decimals)} {req.asset} to {req.to}"
    priced = req.kind == PaymentKind.x402 and req.to != ZERO_ADDRESS
    return f"{label} for {req.url}" if priced else label


async def _result(child: workflow.ChildWorkflowHandle) -> ap.ApprovalOutcome:
    return await child


def _final_failure(err: ActivityError | StepFailed | ChildWorkflowError) -> bool:
    """A failure that retrying cannot fix: a data error from an activity, or a failed child approval."""
    if isinstance(err, ChildWorkflowError):
        return True
    return isinstance(err.cause, ApplicationError) and err.cause.type == ErrorType.data_refused
