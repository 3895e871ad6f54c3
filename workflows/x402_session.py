"""X402SessionWorkflow: reserve a budget once, [approve it once], then serve paid requests as Updates until
closed or expired; then release what is left.

Each paid request is a `fetch` Update. Its validator (no I/O) refuses a closed or expired session, an origin
the session does not allow, and a max_amount above the ceiling or what is left. Its handler, one at a time
(the lock), re-checks that under the lock and runs the whole paid request as ONE local activity
(`x402_session.fetch`: price, sign once, send, settle), so a paid request costs one workflow task. The activity
is idempotent by the request's payment id (the signed authorization is stored with its payment row): after a
crash the workflow task is retried and the activity re-sends the same authorization, never a new one.
Every wait has a timeout: the session's time to live bounds the approval and the active phase; `opened` and
`close` wait for states the run always reaches.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

from paygent import search_attributes as sa
from paygent.domain.x402_session import (
    SESSION_WORKFLOW,
    SessionStatus,
    fetch_refusal,
)
from workflows import approval_types as ap
from workflows import x402_session_types as xs
from workflows.activity_options import DATABASE, X402_SESSION_FETCH

with workflow.unsafe.imports_passed_through():
    from paygent.domain.approval_policy import ApprovalPolicy, choose_tier, needs_approval
    from paygent.domain.approval_state import ApprovalStatus
    from paygent.domain.errors import ErrorType
    from paygent.domain.money import format_amount
    from paygent.domain.operation_hash import Operation
    from paygent.domain.text import scrub

OPENED_WAIT = timedelta(seconds=30)


@workflow.defn(name=SESSION_WORKFLOW)
class X402SessionWorkflow:
    @workflow.init
    def __init__(self, inp: xs.SessionInput) -> None:
        self._in = inp
        self._state = inp.carried or xs.SessionState(
            session_id=inp.session_id,
            status=SessionStatus.pending,
            budget_atomic=inp.budget_atomic,
            expires_at=inp.expires_at,
        )
        self._close: xs.CloseRequest | None = None
        self._lock = asyncio.Lock()
        self._approval: ap.ApprovalProgress | None = None
        self._ended = False  # the final status is recorded (and the rest of the budget released)
        self._recorded = inp.carried.status if inp.carried else SessionStatus.pending  # the row's status

    # ------------------------------------------------------------------ messages
    @workflow.query(name=xs.QUERY_STATE)
    def state(self) -> xs.SessionState:
        return self._state

    @workflow.signal(name=ap.SIGNAL_PROGRESS)
    def approval_progress(self, progress: ap.ApprovalProgress) -> None:
        self._approval = progress
        self._show()

    @workflow.signal(name=ap.SIGNAL_TIMELOCKED)
    def approval_timelocked(self, until: str) -> None:
        workflow.set_current_details(f"{self._details()}\nApproved; time-locked until {until}")

    @workflow.update(name=xs.UPDATE_OPENED)
    async def opened(self) -> xs.SessionState:
        """The state once the budget is reserved (or refused) and approval asked for if the tier wants it."""
        try:
            await workflow.wait_condition(lambda: self._recorded != SessionStatus.pending, timeout=OPENED_WAIT)
        except TimeoutError:
            pass  # still reserving: the caller sees `pending` and may read it again
        return self._state

    @workflow.update(name=xs.UPDATE_FETCH)
    async def fetch(self, req: xs.FetchRequest) -> xs.FetchResult:
        async with self._lock:  # one paid request at a time: each sees what the previous one spent
            self._check(req)
            call = xs.FetchCall(
                session_id=self._in.session_id,
                tenant_id=self._in.tenant_id,
                wallet_id=self._in.wallet_id,
                requested_by_id=self._in.requested_by_id,
                chain_id=self._in.chain_id,
                asset=self._in.asset,
                token_address=self._in.token_address,
                request=req,
                remaining_atomic=self._state.remaining_atomic,
                max_price_atomic=self._in.max_price_atomic,
            )
            try:
                result: xs.FetchResult = await workflow.execute_local_activity(
                    xs.ACT_FETCH,
                    call,
                    result_type=xs.FetchResult,
                    **X402_SESSION_FETCH,
                    summary=f"Pay for {req.url}",
                )
            except (ActivityError, ApplicationError) as err:
                raise self._failed(req, err) from None
            self._record(req, result)
            return result

    @fetch.validator
    def _validate_fetch(self, req: xs.FetchRequest) -> None:
        self._check(req)

    @workflow.update(name=xs.UPDATE_CLOSE)
    async def close(self, req: xs.CloseRequest) -> xs.SessionState:
        """Close now: paid requests in flight finish first; what is left of the budget is released."""
        if self._close is None:
            self._close = req
        await workflow.wait_condition(lambda: self._ended)
        return self._state

    # ------------------------------------------------------------------ the run
    @workflow.run
    async def run(self, inp: xs.SessionInput) -> xs.SessionState:
        self._show()
        if inp.carried is None:
            await self._open()
        if self._state.status == SessionStatus.active:
            if await self._serve():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._in.model_copy(update={"carried": self._state}))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _open(self) -> None:
        reserved: xs.ReserveOutcome = await workflow.execute_activity(
            xs.ACT_RESERVE,
            xs.SessionReserve(
                session_id=self._in.session_id,
                tenant_id=self._in.tenant_id,
                wallet_id=self._in.wallet_id,
                requested_by_id=self._in.requested_by_id,
                asset=self._in.asset,
                budget_atomic=self._in.budget_atomic,
                max_price_atomic=self._in.max_price_atomic,
            ),
            result_type=xs.ReserveOutcome,
            **DATABASE,
            summary=f"Reserve the budget of {self._label()}",
        )
        if not reserved.reserved:
            await self._end(SessionStatus.refused, f"{reserved.limit}: {reserved.message}")
            return
        policy: ApprovalPolicy = await workflow.execute_activity(
            ap.ACT_LOAD_POLICY,
            ap.PolicyRequest(tenant_id=self._in.tenant_id, wallet_id=self._in.wallet_id),
            result_type=ApprovalPolicy,
            **DATABASE,
            summary="Load the approval policy",
        )
        if needs_approval(policy, self._in.budget_atomic) and not await self._approved(policy):
            return
        await self._set(SessionStatus.active)

    async def _approved(self, policy: ApprovalPolicy) -> bool:
        """One approval for the whole budget (the ApprovalWorkflow child a payment uses); the session's time to
        live bounds the wait. False once the session has ended."""
        tier = choose_tier(policy, self._in.budget_atomic)
        await self._set(SessionStatus.awaiting_approval)
        operation = Operation(
            chain_id=self._in.chain_id,
            wallet_id=self._in.wallet_id,
            asset=self._in.asset,
            token_address=self._in.token_address,
            to=self._in.wallet_address,  # many recipients, not known yet: the budget stays the wallet's until paid
            amount_atomic=self._in.budget_atomic,
            payment_id=self._in.session_id,
            memo=scrub(
                f"x402 session budget for {', '.join(self._in.origins)}"
                + (
                    f", at most {format_amount(self._in.max_price_atomic, self._in.decimals)} a request"
                    if self._in.max_price_atomic
                    else ""
                )
                + f", until {self._in.expires_at.isoformat()}"
            )[:1000],
        )
        child_id = ap.approval_workflow_id(self._in.session_id)
        child = await workflow.start_child_workflow(
            ap.WORKFLOW_NAME,
            ap.ApprovalInput(
                approval_id=self._in.session_id,
                tenant_id=self._in.tenant_id,
                operation=operation,
                initiator=self._in.requested_by,
                policy=policy,
            ),
            id=child_id,
            result_type=ap.ApprovalOutcome,
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            static_summary=f"Approve: x402 session {self._label()} ({tier.approvals_required} of "
            f"{len(tier.approvers)})",
        )
        waiting = asyncio.ensure_future(_result(child))
        try:
            await workflow.wait_condition(lambda: waiting.done() or self._close is not None, timeout=self._ttl())
        except TimeoutError:
            pass
        if not waiting.done():
            await workflow.get_external_workflow_handle(child_id).cancel()
            status = SessionStatus.closed if self._close is not None else SessionStatus.expired
            await self._end(status, "ended before it was approved")
            return False
        try:
            outcome: ap.ApprovalOutcome = await waiting
        except ChildWorkflowError as err:
            await self._end(SessionStatus.cancelled, f"the approval failed: {err.cause or err}")
            return False
        if outcome.status != ApprovalStatus.approved:
            await self._end(SessionStatus.cancelled, f"approval {outcome.status}: {outcome.reason}", outcome.decided_by)
            return False
        return True

    async def _serve(self) -> bool:
        """Until closed or expired (then ended: False), or until history is long enough to continue as new."""
        while True:
            try:
                await workflow.wait_condition(
                    lambda: self._close is not None or workflow.info().is_continue_as_new_suggested(),
                    timeout=self._ttl(),
                )
            except TimeoutError:
                await self._finish(SessionStatus.expired, "its time to live ran out")
                return False
            if self._close is not None:
                reason = f"closed by {self._close.actor} via {self._close.channel}"
                await self._finish(
                    SessionStatus.closed, reason + (f": {self._close.reason}" if self._close.reason else "")
                )
                return False
            return True

    async def _finish(self, status: SessionStatus, reason: str) -> None:
        """No new paid request is accepted from here (the status changes first); those in flight finish."""
        self._state.status = status
        await workflow.wait_condition(lambda: not self._lock.locked())
        await self._end(status, reason, self._close.actor if self._close else "system")

    # ------------------------------------------------------------------ helpers
    def _ttl(self) -> timedelta:
        return max(self._in.expires_at - workflow.now(), timedelta(0))

    def _check(self, req: xs.FetchRequest) -> None:
        refusal = fetch_refusal(
            status=self._state.status,
            expires_at=self._in.expires_at,
            now=workflow.now(),
            origins=self._in.origins,
            url=req.url,
            remaining=self._state.remaining_atomic,
            max_price=self._in.max_price_atomic,
            max_amount=req.max_amount_atomic,
        )
        if refusal is not None:
            raise ApplicationError(
                refusal.message,
                xs.FetchRefusal(reason=refusal.reason, message=refusal.message, field=refusal.field),
                type=xs.REFUSED,
                non_retryable=True,
            )

    def _failed(self, req: xs.FetchRequest, err: BaseException) -> ApplicationError:
        """The activity's refusal or unsettled outcome, recorded, as the Update's failure."""
        cause: BaseException | None = err
        while isinstance(cause, ActivityError):
            cause = cause.cause
        if not isinstance(cause, ApplicationError):
            cause = ApplicationError(f"the paid request failed: {err}", type=ErrorType.x402_ambiguous)
        status: xs.RequestOutcome = "failed"
        if cause.type == xs.REFUSED:
            status = "refused"
        elif cause.type == xs.UNSETTLED:
            status = "unsettled"
        held = 0
        if cause.type == xs.UNSETTLED and cause.details:
            held = xs.FetchResult.model_validate(cause.details[0]).held_atomic
            self._state.held_atomic += held
        self._remember(
            xs.RequestRecord(
                payment_id=req.payment_id, url=req.url, status=status, amount_atomic=held, reason=cause.message
            )
        )
        self._state.last_error = f"{req.url}: {cause.message}"
        self._show()
        return ApplicationError(cause.message, *cause.details, type=cause.type, non_retryable=True)

    def _record(self, req: xs.FetchRequest, result: xs.FetchResult) -> None:
        amount = result.paid.amount_atomic if result.paid else 0
        if result.paid and not any(r.payment_id == req.payment_id and r.status == "paid" for r in self._state.requests):
            self._state.spent_atomic += amount
        self._remember(
            xs.RequestRecord(
                payment_id=req.payment_id,
                url=req.url,
                status="paid",
                amount_atomic=amount,
                status_code=result.status_code,
            )
        )
        self._show()

    def _remember(self, record: xs.RequestRecord) -> None:
        self._state.request_count += 1
        self._state.requests = [*self._state.requests, record][-xs.MAX_KEPT :]

    async def _set(self, status: SessionStatus, reason: str | None = None, actor: str = "system") -> None:
        self._state.status = status
        await workflow.execute_activity(
            xs.ACT_MARK,
            xs.SessionMark(
                session_id=self._in.session_id,
                tenant_id=self._in.tenant_id,
                status=status,
                reason=reason,
                actor=actor,
                spent_atomic=self._state.spent_atomic,
                held_atomic=self._state.held_atomic,
            ),
            **DATABASE,
            summary=f"Session {status}",
        )
        self._recorded = status
        workflow.upsert_search_attributes([sa.STATUS.value_set(str(status))])
        self._show()

    async def _end(self, status: SessionStatus, reason: str, actor: str = "system") -> None:
        self._state.reason = scrub(reason)
        await self._set(status, self._state.reason, actor)
        self._ended = True

    def _label(self) -> str:
        return f"{format_amount(self._in.budget_atomic, self._in.decimals)} {self._in.asset}"

    def _details(self) -> str:
        s, d = self._state, self._in.decimals
        lines = [
            f"Session {s.status}: budget {self._label()}, spent {format_amount(s.spent_atomic, d)}, "
            f"held {format_amount(s.held_atomic, d)}, remaining {format_amount(s.remaining_atomic, d)}",
            f"Requests: {s.request_count}; expires {s.expires_at.isoformat()}",
        ]
        if s.last_error:
            lines.append(f"Last error: {s.last_error}")
        if s.reason:
            lines.append(f"Reason: {s.reason}")
        if self._approval is not None and s.status == SessionStatus.awaiting_approval:
            a = self._approval
            lines.append(f"Approval: {a.approvals_had} of {a.approvals_needed} from {', '.join(a.approvers)}")
        return "\n".join(lines)

    def _show(self) -> None:
        workflow.set_current_details(self._details())


async def _result(child: workflow.ChildWorkflowHandle) -> ap.ApprovalOutcome:
    return await child
