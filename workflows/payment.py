"""PaymentWorkflow: record -> sign once -> broadcast -> wait for the receipt -> settle the ledger.

Exactly-once on chain rests on the activities: signing persists the signed transaction before anything is
broadcast and returns the same one on every retry, and broadcasting re-sends those same bytes.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, RetryState
from temporalio.exceptions import TimeoutError as ActivityTimeout

from workflows import payment_types as t
from workflows import search_attributes as sa
from workflows import x402_types as x
from workflows.approval_types import (
    ACT_LOAD_POLICY,
    SIGNAL_PROGRESS,
    SIGNAL_TIMELOCKED,
    ApprovalInput,
    ApprovalOutcome,
    ApprovalProgress,
    PolicyRequest,
    approval_workflow_id,
)

with workflow.unsafe.imports_passed_through():
    from paygent.domain.approval_policy import ApprovalPolicy, choose_tier, needs_approval
    from paygent.domain.errors import DATA_REFUSED
    from paygent.domain.money import format_amount
    from paygent.domain.operation_hash import Operation, operation_hash
    from paygent.domain.text import scrub

DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
X402_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=20),
    non_retryable_error_types=[x.ERR_REFUSED, x.ERR_REJECTED, x.ERR_STATE],
)
# workflow.patched ids: running workflows started before these changes replay their old commands
PATCH_RECEIPT_WAIT = "receipt-wait-leaves-submitted"
PATCH_HOLD_AUTHORIZATION = "x402-hold-reservation-until-valid-before"
CHAIN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=20),
    non_retryable_error_types=["TransferReverted", "WalletMissing"],
)
# Payments started with `local_steps` (PAYGENT_LOCAL_STEPS) take their short steps (database writes, signing,
# sending) as local activities: the worker runs them inside the workflow task and records a marker, instead of
# a round trip through the server for each (issue 11: 8 activities cost 8 server round trips). Every step was
# already idempotent (retries re-send the stored bytes), which is what a local activity's re-run after a crash
# needs. Off by default: on a saturated worker a local activity that outlasts the workflow task timeout gets
# its task timed out and retried (seen with 1,000 payments at once on 2 shared cores), which regular
# activities never suffer. The patch keeps runs from before it replayable.
LOCAL_STEPS = "payment-local-short-steps"


@workflow.defn(name=t.WORKFLOW_NAME)
class PaymentWorkflow:
    def __init__(self) -> None:
        self._state: t.PaymentState | None = None
        self._cancel: t.CancelRequest | None = None
        self._timelocked_until: str | None = None  # signalled by the child approval when its time-lock starts
        self._approval: ApprovalProgress | None = None  # the child approval's latest progress
        self._approval_news: list[ApprovalProgress] = []  # progress not yet passed on to the parent
        self._authorization_valid_before: int | None = None  # set once an x402 authorization is signed

    @workflow.query(name="state")
    def state(self) -> t.PaymentState | None:
        return self._state

    @workflow.signal(name=SIGNAL_TIMELOCKED)
    def approval_timelocked(self, until: str) -> None:
        self._timelocked_until = until

    @workflow.signal(name=SIGNAL_PROGRESS)
    def approval_progress(self, progress: ApprovalProgress) -> None:
        self._approval = progress
        self._approval_news.append(progress)
        if progress.status == "timelocked" and progress.timelock_until is not None:
            self._timelocked_until = progress.timelock_until.isoformat()

    @workflow.update(name="cancel")
    async def cancel(self, request: t.CancelRequest) -> t.PaymentState:
        """Cancel before signing starts; waits for the workflow to record the outcome, then returns it."""
        if self._cancel is None:
            self._cancel = request
        await workflow.wait_condition(lambda: self._state is not None and self._state.status in t.TERMINAL)
        assert self._state is not None
        return self._state

    @cancel.validator
    def _validate_cancel(self, request: t.CancelRequest) -> None:
        status = self._state.status if self._state else t.PENDING
        if status not in t.CANCELLABLE:
            raise ApplicationError(
                f"payment is {status}: it can be cancelled only before signing "
                "(once a transaction is signed and broadcast it cannot be recalled)",
                type="PaymentNotCancellable",
            )

    @workflow.run
    async def run(self, req: t.PaymentRequest) -> t.PaymentState:
        try:
            final = await self._run(req)
        except (ActivityError, ChildWorkflowError) as err:
            # A deterministic failure (the database refused a value; the approval workflow itself failed) would
            # fail the same way on every retry: end cleanly instead, `failed` with the reason, the reservation
            # released and the status change audited (by payments.mark_status).
            if not _final_failure(err) or self._state is None or self._state.status in t.TERMINAL:
                raise
            final = await self._finish(t.FAILED, reason=_reason(err))
        # a pending `cancel` update returns the final state: let it finish before the workflow closes
        await workflow.wait_condition(workflow.all_handlers_finished)
        return final

    async def _run(self, req: t.PaymentRequest) -> t.PaymentState:
        self._req = req
        self._state = t.PaymentState(payment_id=req.payment_id, status=t.PENDING)
        self._label = f"{format_amount(req.amount_atomic, req.decimals)} {req.asset} to {req.to}"
        workflow.set_current_details(f"Pay {self._label}")
        if req.kind == x.KIND_X402:  # the price and recipient come from the server's 402 answer
            terms = await self._x402_terms(req)
            if isinstance(terms, t.PaymentState):
                return terms
            req = self._req = terms
            self._label = f"{format_amount(req.amount_atomic, req.decimals)} {req.asset} to {req.to} for {req.url}"
        reserved: t.ReserveOutcome = await self._step(
            t.ACT_RESERVE,
            req,
            result_type=t.ReserveOutcome,
            start_to_close_timeout=timedelta(seconds=15),
            schedule_to_close_timeout=timedelta(hours=1),
            retry_policy=DB_RETRY,
            summary=f"Check spending limits and reserve {self._label}",
        )
        if not reserved.reserved:
            return await self._finish(t.REFUSED, reason=f"{reserved.limit}: {reserved.message}")
        approved = await self._approval_gate(req)
        if isinstance(approved, t.PaymentState):
            return approved
        req = self._req = approved
        if self._cancel is not None:
            return await self._cancelled()
        try:
            # from here on the payment is not cancellable: the status changes before any await
            await self._set_status(t.SIGNING)
            if req.kind == x.KIND_X402:
                receipt = await self._execute_x402(req)
                if isinstance(receipt, t.PaymentState):
                    return receipt
            else:
                receipt = await self._execute_transfer(req)
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type in (x.ERR_REFUSED, x.ERR_REJECTED):
                return await self._finish(t.REFUSED, reason=_reason(err))
            return await self._finish(t.FAILED, reason=_reason(err))
        if receipt.pending and workflow.patched(PATCH_RECEIPT_WAIT):
            return self._left_to_reconciler(receipt)
        return await self._settle(req, receipt)

    def _left_to_reconciler(self, receipt: t.ReceiptResult) -> t.PaymentState:
        """The receipt wait gave up: the signed transaction may still land, so the payment is not `failed`.
        It stays `submitted` with its reservation; the reconciler re-sends the same bytes and settles it."""
        assert self._state is not None
        self._state.tx_hash = receipt.tx_hash or self._state.tx_hash
        workflow.set_current_details(f"Submitted {self._label}: no receipt yet; the reconciler settles it")
        return self._state

    async def _approval_gate(self, req: t.PaymentRequest) -> t.PaymentRequest | t.PaymentState:
        """M-of-N approval (and its time-lock) when the policy's tier for this amount asks for it.

        Runs the ApprovalWorkflow as a child bound to the operation's hash; returns the operation to execute
        (an edit may have changed amount, recipient or memo: the reservation is then taken again), or the
        payment's final state when the approval did not end `approved`.
        """
        policy: ApprovalPolicy = await self._step(
            ACT_LOAD_POLICY,
            PolicyRequest(tenant_id=req.tenant_id, wallet_id=req.wallet_id),
            result_type=ApprovalPolicy,
            start_to_close_timeout=timedelta(seconds=15),
            schedule_to_close_timeout=timedelta(hours=1),
            retry_policy=DB_RETRY,
            summary="Load the approval policy",
        )
        if not needs_approval(policy, req.amount_atomic) or self._cancel is not None:
            return req
        tier = choose_tier(policy, req.amount_atomic)
        await self._set_status(
            t.AWAITING_APPROVAL,
            details={
                "approvals_needed": tier.approvals_required,
                "approvers": tier.approvers,
                "timelock_seconds": tier.timelock_seconds,
            },
        )
        workflow.set_current_details(
            f"Pay {self._label}: waiting for {tier.approvals_required} of {', '.join(tier.approvers)}"
        )
        operation = Operation(
            chain_id=req.chain_id,
            wallet_id=req.wallet_id,
            asset=req.asset,
            token_address=req.token_address,
            to=req.to,
            amount_atomic=req.amount_atomic,
            payment_id=req.payment_id,
            memo=req.memo,
        )
        child_id = approval_workflow_id(req.payment_id)
        child = await workflow.start_child_workflow(
            "ApprovalWorkflow",
            ApprovalInput(
                approval_id=req.payment_id,
                tenant_id=req.tenant_id,
                operation=operation,
                initiator=req.requested_by,
                policy=policy,
            ),
            id=child_id,
            result_type=ApprovalOutcome,
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            static_summary=f"Approve: pay {self._label} ({tier.approvals_required} of {len(tier.approvers)})",
        )
        waiting = asyncio.ensure_future(_result(child))
        shown_timelock = None
        while True:  # no timeout of its own: the child's approval timeout and time-lock bound this wait
            await workflow.wait_condition(
                lambda shown=shown_timelock: (
                    waiting.done()
                    or self._cancel is not None
                    or self._timelocked_until != shown
                    or bool(self._approval_news)
                )
            )
            news, self._approval_news = self._approval_news, []
            for progress in news:  # who approved, n of m: pass it on as it lands
                await self._tell_parent("approval", progress)
            if waiting.done() or self._cancel is not None:
                break
            if self._timelocked_until == shown_timelock:
                continue
            shown_timelock = self._timelocked_until
            await self._set_status(t.TIME_LOCKED, details={"until": shown_timelock})
            workflow.set_current_details(f"Pay {self._label}: approved, time-locked until {shown_timelock}")
        if not waiting.done():  # the payment was cancelled while approvals were pending: so is the approval
            await workflow.get_external_workflow_handle(child_id).cancel()
        outcome: ApprovalOutcome = await waiting
        if self._approval is not None:  # the parent's next status change carries how the approval ended
            self._approval = self._approval.model_copy(
                update={
                    "change": "decided",
                    "status": outcome.status,
                    "actor": outcome.decided_by,
                    "reason": outcome.reason,
                }
            )
        if outcome.status != "approved":
            if self._cancel is not None:
                return await self._cancelled()
            return await self._finish(
                t.CANCELLED, reason=f"approval {outcome.status}: {outcome.reason}", actor=outcome.decided_by or "system"
            )
        final = outcome.operation
        if operation_hash(final) != outcome.operation_hash:
            return await self._finish(t.FAILED, reason="approved operation does not match its hash")
        edited = req.model_copy(update={"to": final.to, "amount_atomic": final.amount_atomic, "memo": final.memo})
        if edited != req:  # the initiator edited it while pending: the new terms must fit the limits too
            reserved: t.ReserveOutcome = await self._step(
                t.ACT_RESERVE,
                edited,
                result_type=t.ReserveOutcome,
                start_to_close_timeout=timedelta(seconds=15),
                schedule_to_close_timeout=timedelta(hours=1),
                retry_policy=DB_RETRY,
                summary="Reserve again for the edited operation",
            )
            if not reserved.reserved:
                return await self._finish(t.REFUSED, reason=f"{reserved.limit}: {reserved.message}")
            self._label = f"{format_amount(edited.amount_atomic, edited.decimals)} {edited.asset} to {edited.to}"
        who = ", ".join(a.on_behalf_of or a.approver for a in outcome.approvals)
        workflow.set_current_details(f"Pay {self._label}: approved by {who}")
        return edited

    async def _execute_transfer(self, req: t.PaymentRequest) -> t.ReceiptResult:
        signed: t.SignedTransfer = await self._step(
            t.ACT_SIGN,
            req,
            result_type=t.SignedTransfer,
            start_to_close_timeout=timedelta(seconds=20),
            schedule_to_close_timeout=timedelta(hours=1),
            retry_policy=CHAIN_RETRY,
            summary=f"Sign transfer of {self._label}",
        )
        assert self._state is not None
        self._state.tx_hash = signed.tx_hash
        await self._step(
            t.ACT_BROADCAST,
            req.payment_id,
            start_to_close_timeout=timedelta(seconds=20),
            schedule_to_close_timeout=timedelta(hours=1),
            retry_policy=CHAIN_RETRY,
            summary=f"Broadcast {signed.tx_hash}",
        )
        await self._set_status(t.SUBMITTED, details={"tx_hash": signed.tx_hash})
        return await workflow.execute_activity(
            t.ACT_AWAIT_RECEIPT,
            req,
            result_type=t.ReceiptResult,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=5),
            schedule_to_close_timeout=timedelta(hours=6),
            retry_policy=CHAIN_RETRY,
            summary=f"Wait for receipt of {signed.tx_hash}",
        )

    def _x402_policy(self, req: t.PaymentRequest) -> x.X402Policy:
        return x.X402Policy(
            max_amount_atomic=req.max_amount_atomic or req.amount_atomic,
            allowed_assets=[req.token_address],
            network=f"eip155:{req.chain_id}",
        )

    async def _x402_terms(self, req: t.PaymentRequest) -> t.PaymentRequest | t.PaymentState:
        """Ask the URL its price (nothing is signed); refuse what the wallet's x402 policy rules out."""
        try:
            probe: x.X402ProbeResult = await self._step(
                x.ACT_X402_PROBE,
                x.X402ProbeRequest(
                    payment_id=req.payment_id, tenant_id=req.tenant_id, url=req.url, policy=self._x402_policy(req)
                ),
                result_type=x.X402ProbeResult,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(minutes=10),
                retry_policy=X402_RETRY,
                summary=f"Ask {req.url} for its price",
            )
        except ActivityError as err:
            return await self._finish(t.REFUSED, reason=_reason(err))
        if not probe.payment_required:
            return await self._finish(
                t.CANCELLED,
                reason=f"{req.url} answered {probe.status_code} without asking for payment: nothing was paid",
            )
        return req.model_copy(update={"amount_atomic": probe.amount_atomic, "to": probe.pay_to})

    async def _execute_x402(self, req: t.PaymentRequest) -> t.ReceiptResult | t.PaymentState:
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
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=timedelta(hours=1),
            retry_policy=X402_RETRY,
            summary=f"Sign the x402 authorization for {self._label}",
        )
        self._authorization_valid_before = signed.valid_before
        await self._set_status(t.SUBMITTED)
        sent: x.X402SendResult = await self._step(
            x.ACT_X402_SEND,
            x.X402SendRequest(payment_id=req.payment_id, tenant_id=req.tenant_id),
            result_type=x.X402SendResult,
            start_to_close_timeout=timedelta(seconds=40),
            schedule_to_close_timeout=timedelta(hours=1),
            retry_policy=X402_RETRY,
            summary=f"Send the paid request to {req.url}",
        )
        if sent.outcome not in x.SETTLED_OUTCOMES:
            return await self._finish(
                t.CANCELLED, reason=f"{req.url} answered {sent.status_code} without settling: nothing was paid"
            )
        return t.ReceiptResult(
            tx_hash=sent.transaction, succeeded=True, block_number=None, gas_used=0, revert_reason=None
        )

    async def _settle(self, req: t.PaymentRequest, receipt: t.ReceiptResult) -> t.PaymentState:
        assert self._state is not None
        settlement = t.Settlement(
            payment_id=req.payment_id,
            tenant_id=req.tenant_id,
            wallet_id=req.wallet_id,
            to=req.to,
            asset=req.asset,
            amount_atomic=req.amount_atomic,
            receipt=receipt,
        )
        await self._step(
            t.ACT_SETTLE,
            settlement,
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=timedelta(hours=1),
            retry_policy=DB_RETRY,
            summary="Write ledger entries and the final status",
        )
        self._state.block_number = receipt.block_number
        self._state.tx_hash = receipt.tx_hash or self._state.tx_hash
        if receipt.succeeded:
            self._state.status = t.CONFIRMED
            workflow.set_current_details(
                f"Paid {self._label}" + (f" in block {receipt.block_number}" if receipt.block_number else "")
            )
        else:
            self._state.status = t.FAILED
            self._state.failure_reason = f"TransferReverted: {receipt.revert_reason}"
            workflow.set_current_details(f"Reverted on chain: {receipt.revert_reason}")
        self._upsert_status()
        return self._state

    async def _step(self, activity: str, arg, **options):
        """One short step: a local activity when the payment asked for it (and has the patch), else regular.

        A local activity's failure reaches the workflow unwrapped (the ApplicationError itself); it is wrapped
        here in the ActivityError a regular activity raises, so every caller handles one shape."""
        if not (self._req.local_steps and workflow.patched(LOCAL_STEPS)):
            return await workflow.execute_activity(activity, arg, **options)
        try:
            return await workflow.execute_local_activity(activity, arg, **options)
        except (ApplicationError, ActivityTimeout) as err:
            final = isinstance(err, ApplicationError) and err.non_retryable
            raise ActivityError(
                f"local activity {activity} failed",
                scheduled_event_id=0,
                started_event_id=0,
                identity="",
                activity_type=activity,
                activity_id="",
                retry_state=RetryState.NON_RETRYABLE_FAILURE if final else RetryState.TIMEOUT,
            ) from err

    async def _cancelled(self) -> t.PaymentState:
        assert self._cancel is not None
        reason = f"cancelled by {self._cancel.actor} via {self._cancel.channel}"
        if self._cancel.reason:
            reason += f": {self._cancel.reason}"
        return await self._finish(t.CANCELLED, reason=reason, actor=self._cancel.actor)

    async def _set_status(
        self,
        status: str,
        *,
        reason: str | None = None,
        details: dict | None = None,
        actor: str = "system",
        hold_reservation: bool = False,
    ) -> None:
        assert self._state is not None
        previous, self._state.status = self._state.status, status
        await self._step(
            t.ACT_MARK_STATUS,
            t.StatusChange(
                payment_id=self._req.payment_id,
                status=status,
                reason=reason,
                actor=actor,
                details=details or {},
                hold_reservation=hold_reservation,
            ),
            start_to_close_timeout=timedelta(seconds=15),
            schedule_to_close_timeout=timedelta(hours=1),
            retry_policy=DB_RETRY,
            summary=f"Status {previous} -> {status}",
        )
        self._upsert_status()
        await self._tell_parent("status")

    async def _tell_parent(self, change: str, approval: ApprovalProgress | None = None) -> None:
        """Push this change to the workflow that started the payment (an agent run), so it never polls.

        Awaited, so the parent receives changes in order and before the payment's result. Payments started
        before the patch (and payments with no parent) send nothing. Best effort: a parent that is gone (a
        cancelled run) does not stop the payment.
        """
        parent = workflow.info().parent
        if parent is None or not workflow.patched(t.PATCH_PROGRESS):
            return
        assert self._state is not None
        progress = t.PaymentProgress(
            payment_id=self._state.payment_id,
            change=change,  # type: ignore[arg-type]
            status=self._state.status,
            approval=approval or self._approval,
            reason=self._state.failure_reason,
        )
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(t.SIGNAL_PROGRESS, progress)
        except Exception as err:
            workflow.logger.warning("could not tell parent %s about %s: %s", parent.workflow_id, change, err)

    async def _finish(self, status: str, *, reason: str, actor: str = "system") -> t.PaymentState:
        assert self._state is not None
        reason = scrub(reason)  # a reason quoting a refused value must still be storable
        hold = self._authorization_valid_before is not None and workflow.patched(PATCH_HOLD_AUTHORIZATION)
        if hold:  # the server holds a signed authorization it may still settle: keep the budget until it expires
            reason += (
                f" (the signed authorization stays valid until {self._authorization_valid_before}: "
                "the reservation is held until then, and a late settlement is reconciled)"
            )
        self._state.failure_reason = reason
        await self._set_status(status, reason=reason, actor=actor, hold_reservation=hold)
        workflow.set_current_details(f"{status}: {reason}")
        return self._state

    def _upsert_status(self) -> None:
        assert self._state is not None
        workflow.upsert_search_attributes([sa.STATUS.value_set(self._state.status)])


async def _result(child: workflow.ChildWorkflowHandle) -> ApprovalOutcome:
    return await child


def _final_failure(err: ActivityError | ChildWorkflowError) -> bool:
    """A failure that retrying cannot fix: a data error from an activity, or a failed child approval."""
    if isinstance(err, ChildWorkflowError):
        return True
    return isinstance(err.cause, ApplicationError) and err.cause.type == DATA_REFUSED


def _reason(err: ActivityError | ChildWorkflowError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type}: {cause.message}" if cause.type else cause.message
    return str(cause or err)
