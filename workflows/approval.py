"""ApprovalWorkflow: M-of-N human approval of one operation, bound to its hash, with a deadline and a time-lock.

It decides; the rules are pure functions in `paygent.domain.approval_rules`, run once in the Update validator on a
copy of the state (so a bad request is refused before anything reaches history) and again in the handler under
`self._lock` (the state may have moved while other handlers awaited). Decisions also arrive as Signals with JSON
bodies, for `temporal workflow signal`; a Signal cannot answer, so a refused one is logged and audited instead.
An accepted decision answers as soon as it is in the state (and so in history, with the Update's completion): its
audit row and the parent payment's progress go to an outbox that a follow-up task writes in order. Nothing moves
the state further (another decision, the deadline, the time-lock's end, the final record) until the outbox is
empty, and a replay after a crash rebuilds the outbox from the same history, so both still land, in order.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.activity_options import NOTIFY_DELIVER, NOTIFY_LOOKUP, RECORD_DECISION, SIGNAL_GATE
from workflows.deadline import wait_until

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from paygent import search_attributes as keys
    from paygent.domain import approval_rules as rules
    from paygent.domain.approval_state import LEGACY_TIME_LOCKED, ApprovalStatus
    from paygent.domain.channels import Channel
    from paygent.domain.errors import ErrorType
    from paygent.domain.text import scrub
    from workflows.approval_decisions import apply_decision
    from workflows.approval_signal_body import NO_BODY, decode_signal_body
    from workflows.approval_types import (
        ACT_PUBLISH,
        ACT_RECORD,
        ACT_SIGNAL_GATE,
        ACT_WEBHOOK,
        PATCH_PROGRESS,
        PATCH_TIME_LOCKED_SPELLING,
        REQUEST_MODELS,
        SIGNAL_PROGRESS,
        SIGNAL_TIMELOCKED,
        WORKFLOW_NAME,
        ApprovalEvent,
        ApprovalEventType,
        ApprovalInput,
        ApprovalOutcome,
        ApprovalProgress,
        ApprovalProgressChange,
        ApprovalView,
        ApproveRequest,
        CancelRequest,
        Decision,
        DecisionRecord,
        DecisionRequest,
        DecisionResult,
        DelegateRequest,
        EditRequest,
        RejectRequest,
        RevokeRequest,
        WebhookDelivery,
        details_markdown,
        outcome_of,
        progress_of,
        view_of,
    )

PROGRESS_CHANGES: dict[Decision, ApprovalProgressChange] = {
    Decision.approve: "approved",
    Decision.revoke: "revoked",
    Decision.edit: "edited",
}
# Signal decisions ask the worker's PAYGENT_SIGNAL_DECISIONS first (an activity): histories from before have no
# such activity, so they replay without it.
PATCH_SIGNAL_GATE = "signal-decisions-gate"
# A cancel request that lands in the same activation as a completed Signal to the parent is consumed by that
# Signal's await (the SDK lets a finished operation decide): the approval then waited out its deadline instead of
# ending `cancelled`. It is now checked before every wait; runs from before replay without the check.
PATCH_LATE_CANCEL = "approval-honours-a-late-cancel"
# Decision Signals are decoded by the workflow: one whose body the SDK's converter cannot decode (e.g. an unpaired
# surrogate) is refused and audited; before, the SDK dropped it unseen, and those runs replay without it.
PATCH_RAW_SIGNALS = "approval-signal-bodies-decoded-raw"
# An accepted decision answers before its audit row and the parent's progress are written (the outbox); runs from
# before wrote both inside the Update handler, and replay that way.
PATCH_ANSWER_FIRST = "approval-answers-before-follow-ups"


@dataclass(frozen=True)
class FollowUp:
    """What an accepted decision still owes once answered: its audit row and the parent's progress, both as of the
    decision (the state may have moved by the time they are written)."""

    record: DecisionRecord
    progress: ApprovalProgress | None


@workflow.defn(name=WORKFLOW_NAME)
class ApprovalWorkflow:
    @workflow.init
    def __init__(self, inp: ApprovalInput) -> None:
        self._state = rules.open_approval(
            approval_id=inp.approval_id,
            tenant_id=inp.tenant_id,
            initiator=inp.initiator,
            policy=inp.policy,
            operation=inp.operation,
            delegations=inp.delegations,
            now=workflow.now(),
        )
        self._lock = asyncio.Lock()
        self._results: dict[str, DecisionResult] = {}  # request id -> answer: a retried request gets the same one
        self._notifications: list[asyncio.Task[None]] = []
        self._opened = False  # handlers wait for it, so "approval.requested" is always the first audit row
        self._told_parent = None  # the time-lock end last signalled to a parent workflow
        self._outbox: list[FollowUp] = []  # accepted decisions whose audit row or parent progress is not written yet
        self._follower: asyncio.Task[None] | None = None

    @workflow.run
    async def run(self, inp: ApprovalInput) -> ApprovalOutcome:
        closing_channel = Channel.system
        try:
            async with self._lock:
                self._show()
                await self._record(
                    "approval.requested",
                    inp.initiator,
                    Channel.system,
                    {"operation_hash": self._state.operation_hash, "tier": self._state.tier.describe()},
                )
                self._opened = True
                await self._tell_parent("opened", None)
            self._notify_later("approval.requested")
            while self._state.status not in rules.APPROVAL_FINAL:
                self._honour_cancel()
                if self._state.status == ApprovalStatus.pending:
                    await self._wait_for_decision()
                else:
                    await self._wait_for_timelock()
        except asyncio.CancelledError:  # e.g. the parent payment was cancelled: still a clean, audited outcome
            self._opened = True
            await self._followed_up()
            asked = workflow.cancellation_reason()
            reason = "the approval workflow was cancelled" + (f": {asked}" if asked else "")
            rules.abandon(self._state, workflow.now(), reason)
            # A parent payment records who cancelled it; an approval of its own is cancelled only with
            # Temporal's tools (the API's cancel is an Update).
            if workflow.info().parent is None:
                closing_channel = Channel.temporal
        await workflow.wait_condition(workflow.all_handlers_finished)
        async with self._lock:
            await self._followed_up()
            self._show()
            await self._record(
                "approval.decided",
                "system",
                closing_channel,
                {
                    "status": self._state.status,
                    "decided_by": self._state.decided_by,
                    "reason": self._state.reason,
                    "operation_hash": self._state.operation_hash,
                },
            )
        self._notify_later("approval.decided")
        await asyncio.gather(*self._notifications)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return outcome_of(self._state)

    async def _wait_for_decision(self) -> None:
        """An edit moves the deadline: the wait wakes, and the next pass waits on the new one."""
        passed = await wait_until(
            lambda: self._state.expires_at,
            lambda: self._state.status != ApprovalStatus.pending,
            summary=lambda deadline: f"approval deadline {rules.fmt_time(deadline)}",
        )
        if not passed:
            return
        async with self._lock:  # a handler in flight finishes first; expire() re-checks status and deadline
            await self._followed_up()
            rules.expire(self._state, workflow.now())

    async def _wait_for_timelock(self) -> None:
        until = self._state.timelock_until
        assert until is not None
        await self._tell_parent_timelocked(until)
        self._honour_cancel()  # a cancel consumed by that Signal's await must not let the time-lock approve
        passed = await wait_until(
            lambda: until,
            lambda: self._state.status != ApprovalStatus.time_locked,
            summary=lambda at: f"time-lock until {at:%H:%M} UTC",
        )
        if not passed:
            return
        async with self._lock:
            await self._followed_up()
            rules.end_timelock(self._state, workflow.now())

    def _honour_cancel(self) -> None:
        """Raise the cancellation a completed await swallowed (see PATCH_LATE_CANCEL); `run` ends `cancelled`."""
        if workflow.cancellation_reason() is not None and workflow.patched(PATCH_LATE_CANCEL):
            raise asyncio.CancelledError()

    def _pushes_progress(self) -> bool:
        """Approvals opened before the progress patch keep their old command sequence when replayed."""
        return workflow.info().parent is not None and workflow.patched(PATCH_PROGRESS)

    async def _tell_parent(self, change: ApprovalProgressChange, actor: str | None) -> None:
        """Push who must act and how far the approval got to the parent payment (which tells its agent run).

        Caller holds the lock, so the parent receives the changes in the order they happened. Best effort: a
        parent that is gone does not change the approval's own outcome.
        """
        progress = self._progress(change, actor)
        if progress is not None:
            await self._send_progress(progress)

    def _progress(self, change: ApprovalProgressChange, actor: str | None) -> ApprovalProgress | None:
        return progress_of(self._state, change, actor) if self._pushes_progress() else None

    async def _send_progress(self, progress: ApprovalProgress) -> None:
        parent = workflow.info().parent
        assert parent is not None
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(SIGNAL_PROGRESS, progress)
        except Exception as err:
            workflow.logger.warning("could not tell parent %s about %s: %s", parent.workflow_id, progress.change, err)

    async def _tell_parent_timelocked(self, until) -> None:
        """Let a parent payment show `time_locked` (it cannot query its child); once, best effort.

        Approvals that push progress already told the parent (the approval that met the threshold carried the
        time-lock's end); older ones send the bare `approval_timelocked` signal.
        """
        parent = workflow.info().parent
        if parent is None or self._told_parent == until or self._pushes_progress():
            return
        self._told_parent = until
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(SIGNAL_TIMELOCKED, until.isoformat())
        except Exception as err:  # the parent may be gone: the approval's own outcome is unaffected
            workflow.logger.warning("could not tell parent %s about the time-lock: %s", parent.workflow_id, err)

    # --- Updates: validator refuses before history; handler re-checks under the lock and audits. ---
    @workflow.update
    async def approve(self, req: ApproveRequest) -> DecisionResult:
        return await self._answer(Decision.approve, req)

    @approve.validator
    def _validate_approve(self, req: ApproveRequest) -> None:
        self._validate(Decision.approve, req)

    @workflow.update
    async def reject(self, req: RejectRequest) -> DecisionResult:
        return await self._answer(Decision.reject, req)

    @reject.validator
    def _validate_reject(self, req: RejectRequest) -> None:
        self._validate(Decision.reject, req)

    @workflow.update
    async def revoke(self, req: RevokeRequest) -> DecisionResult:
        return await self._answer(Decision.revoke, req)

    @revoke.validator
    def _validate_revoke(self, req: RevokeRequest) -> None:
        self._validate(Decision.revoke, req)

    @workflow.update
    async def cancel(self, req: CancelRequest) -> DecisionResult:
        return await self._answer(Decision.cancel, req)

    @cancel.validator
    def _validate_cancel(self, req: CancelRequest) -> None:
        self._validate(Decision.cancel, req)

    @workflow.update
    async def edit(self, req: EditRequest) -> DecisionResult:
        return await self._answer(Decision.edit, req)

    @edit.validator
    def _validate_edit(self, req: EditRequest) -> None:
        self._validate(Decision.edit, req)

    @workflow.update
    async def delegate(self, req: DelegateRequest) -> DecisionResult:
        return await self._answer(Decision.delegate, req)

    @delegate.validator
    def _validate_delegate(self, req: DelegateRequest) -> None:
        self._validate(Decision.delegate, req)

    # --- Signals: the same decisions as JSON bodies, e.g. from `temporal workflow signal --name approve`. Their
    # payloads arrive raw and are decoded here (`decode_signal_body`), so a body the SDK cannot decode is refused
    # and audited instead of dropped before any handler runs. ---
    @workflow.signal(name=Decision.approve)
    async def approve_signal(self, body: RawValue = NO_BODY) -> None:
        await self._decide_from_raw_signal(Decision.approve, body)

    @workflow.signal(name=Decision.reject)
    async def reject_signal(self, body: RawValue = NO_BODY) -> None:
        await self._decide_from_raw_signal(Decision.reject, body)

    @workflow.signal(name=Decision.revoke)
    async def revoke_signal(self, body: RawValue = NO_BODY) -> None:
        await self._decide_from_raw_signal(Decision.revoke, body)

    @workflow.signal(name=Decision.cancel)
    async def cancel_signal(self, body: RawValue = NO_BODY) -> None:
        await self._decide_from_raw_signal(Decision.cancel, body)

    @workflow.signal(name=Decision.edit)
    async def edit_signal(self, body: RawValue = NO_BODY) -> None:
        await self._decide_from_raw_signal(Decision.edit, body)

    @workflow.signal(name=Decision.delegate)
    async def delegate_signal(self, body: RawValue = NO_BODY) -> None:
        await self._decide_from_raw_signal(Decision.delegate, body)

    @workflow.query(name="state")
    def state(self) -> ApprovalView:
        return view_of(self._state, workflow.now(), workflow.info().workflow_id)

    async def _answer(self, kind: Decision, req: Any) -> DecisionResult:
        result = await self._decide(kind, req, _update_id())
        assert result is not None  # an Update's refusal raises ApplicationError
        return result

    def _validate(self, kind: Decision, req: DecisionRequest) -> None:
        if req.tenant_id is not None and req.tenant_id != self._state.tenant_id:
            # looks exactly like an approval that does not exist; nothing reaches history
            raise ApplicationError("approval not found", type=rules.NOT_FOUND, non_retryable=True)
        if _update_id() in self._results:
            return  # a retry of an accepted request: the handler answers it from the cache
        try:
            apply_decision(self._state.model_copy(deep=True), kind, req, workflow.now())
        except rules.Refusal as refusal:
            raise ApplicationError(refusal.reason, type=refusal.type, non_retryable=True) from None

    async def _decide(
        self, kind: Decision, req: Any, request_id: str | None, via_signal: bool = False
    ) -> DecisionResult | None:
        """Returns None only for a refused Signal (already logged and audited)."""
        await workflow.wait_condition(lambda: self._opened)
        if request_id and request_id in self._results:
            return self._results[request_id]
        async with self._lock:
            await self._followed_up()  # an earlier decision's audit row and progress land before this one
            if request_id and request_id in self._results:
                return self._results[request_id]
            try:
                data = apply_decision(self._state, kind, req, workflow.now())
            except rules.Refusal as refusal:
                if not via_signal:
                    raise ApplicationError(refusal.reason, type=refusal.type, non_retryable=True) from None
                await self._refuse_signal(kind, req.model_dump(mode="json"), req.actor, refusal)
                return None
            s = self._state
            result = DecisionResult(
                decision=kind,
                counted=kind == Decision.approve and data is not None,
                duplicate=data is None,
                status=s.status,
                approvals_had=len(s.approvals),
                approvals_needed=s.approvals_needed,
                operation_hash=s.operation_hash,
            )
            if request_id:
                self._results[request_id] = result
            if data is None:
                return result
            self._show()
            record = self._audit_record(
                f"approval.{kind}",
                req.actor,
                req.channel,
                {
                    **data,
                    "request_id": request_id,
                    "status": s.status,
                    "approvals_had": len(s.approvals),
                    "approvals_needed": s.approvals_needed,
                },
                attestation=req.attestation,
            )
            if workflow.patched(PATCH_ANSWER_FIRST):
                progress = self._progress(PROGRESS_CHANGES[kind], req.actor) if kind in PROGRESS_CHANGES else None
                self._outbox.append(FollowUp(record, progress))
                if self._follower is None or self._follower.done():
                    self._follower = asyncio.create_task(self._follow_up())
                if kind == Decision.edit:
                    self._notify_later("approval.requested")  # the new operation needs (new) approvals
                return result
            await self._store(record)
            if kind == Decision.edit:
                self._notify_later("approval.requested")
            if kind in PROGRESS_CHANGES:
                await self._tell_parent(PROGRESS_CHANGES[kind], req.actor)
            return result

    async def _follow_up(self) -> None:
        """Writes the outbox in decision order; an entry leaves it only once both its parts have landed."""
        while self._outbox:
            item = self._outbox[0]
            await self._store(item.record)
            if item.progress is not None:
                await self._send_progress(item.progress)
            self._outbox.pop(0)

    async def _followed_up(self) -> None:
        """Returns once every accepted decision's audit row and progress have landed.

        When none is owed it does not await at all: even a wait on a condition already true yields to the other
        coroutines, which would reorder the commands of histories recorded before the outbox existed.
        """
        if self._outbox:
            await workflow.wait_condition(lambda: not self._outbox)

    async def _decide_from_raw_signal(self, kind: Decision, raw: RawValue) -> None:
        """Decode the body as the SDK did (the workflow's payload converter); one it cannot decode is read again
        leniently (`decode_signal_body`) and refused or decided like any other, where runs from before
        PATCH_RAW_SIGNALS dropped it, as the SDK did, and replay that way."""
        try:
            body, problem = workflow.payload_converter().from_payload(raw.payload, Any), None
        except Exception as exc:  # any decoding failure: the converter's errors have no common type
            if not workflow.patched(PATCH_RAW_SIGNALS):
                workflow.logger.warning("dropping the %s signal: its body could not be decoded (%s)", kind, exc)
                return
            body, problem = decode_signal_body(raw.payload, exc)
        await self._decide_from_signal(kind, body, problem)

    async def _decide_from_signal(self, kind: Decision, body: Any, problem: str | None = None) -> None:
        """A Signal is audited with channel `temporal`, whatever its body claims: only the API (through Updates)
        may record `api` or `cli`. An operator can refuse decisions by Signal altogether (PAYGENT_SIGNAL_DECISIONS).
        `problem` says why the body could not be read at all (it is then refused as invalid)."""
        if workflow.patched(PATCH_SIGNAL_GATE) and not await self._signals_allowed():
            await self._refuse_signal_now(
                kind,
                body,
                rules.Refusal(
                    rules.SIGNALS_OFF,
                    "decisions sent as Temporal Signals are turned off on this deployment "
                    "(PAYGENT_SIGNAL_DECISIONS=off): decide through the API or `paygent approvals`",
                ),
            )
            return
        if problem is not None:
            await self._refuse_signal_now(kind, body, rules.Refusal(rules.INVALID, problem))
            return
        try:
            req = REQUEST_MODELS[kind].model_validate(body)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
            await self._refuse_signal_now(kind, body, rules.Refusal(rules.INVALID, problems))
            return
        req = req.model_copy(update={"channel": "temporal"})
        await self._decide(kind, req, req.request_id, via_signal=True)

    async def _signals_allowed(self) -> bool:
        try:
            return await workflow.execute_activity(
                ACT_SIGNAL_GATE,
                result_type=bool,
                **SIGNAL_GATE,
                summary="may decisions arrive as Signals?",
            )
        except ActivityError as exc:  # unknown: refuse (the decision can still be sent through the API)
            workflow.logger.warning("could not read the signal-decisions setting: %s", exc)
            return False

    async def _refuse_signal_now(self, kind: Decision, body: Any, refusal: rules.Refusal) -> None:
        actor = str(body.get("actor") or body.get("approver") or "unknown") if isinstance(body, dict) else "unknown"
        await workflow.wait_condition(lambda: self._opened)
        async with self._lock:
            await self._refuse_signal(kind, body, actor, refusal)

    async def _refuse_signal(self, kind: Decision, body: Any, actor: str, refusal: rules.Refusal) -> None:
        """Caller holds the lock. A Signal has no answer channel: the refusal is logged and audited instead.

        The body is shown as sent, made storable (a NUL in it must not make the audit write fail for good).
        """
        workflow.logger.warning("refused %s signal from %s: %s (%s)", kind, actor, refusal.reason, refusal.type)
        shown = body if len(json.dumps(body, default=str)) <= 4000 else "(body over 4000 characters, not kept)"
        await self._record(
            "approval.signal_refused",
            scrub(actor[:200]),
            Channel.temporal,
            scrub({"signal": kind, "type": refusal.type, "reason": refusal.reason, "body": shown}),
        )

    async def _record(
        self, action: str, actor: str, channel: rules.Channel, data: dict[str, Any], *, attestation: str | None = None
    ) -> None:
        await self._followed_up()  # audit rows keep the order of what they record
        await self._store(self._audit_record(action, actor, channel, data, attestation=attestation))

    def _audit_record(
        self, action: str, actor: str, channel: rules.Channel, data: dict[str, Any], *, attestation: str | None = None
    ) -> DecisionRecord:
        return DecisionRecord(
            action=action,
            actor=actor,
            channel=channel,
            at=workflow.now(),
            data=data,
            view=self._view(),
            attestation=attestation,
        )

    async def _store(self, record: DecisionRecord) -> None:
        """One audit row, retried until it lands; a value the database refuses is stored scrubbed."""
        action = record.action
        try:
            await self._write(record)
        except ActivityError as err:
            # The database refused a value (retrying cannot help): write the same row with every string made
            # storable, so the decision is still audited and the approval still reaches its end.
            if not (isinstance(err.cause, ApplicationError) and err.cause.type == ErrorType.data_refused):
                raise
            workflow.logger.warning("audit %s refused by the database (%s): recording it scrubbed", action, err.cause)
            await self._write(DecisionRecord.model_validate(scrub(record.model_dump(mode="json"))))

    async def _write(self, record: DecisionRecord) -> None:
        write = asyncio.ensure_future(
            workflow.execute_activity(
                ACT_RECORD,
                record,
                **RECORD_DECISION,
                summary=f"audit {record.action} by {record.actor}",
            )
        )
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            await write  # an audit write is never abandoned: the cancellation is seen once it has landed
            raise

    def _notify_later(self, event_type: ApprovalEventType) -> None:
        """Notifications run beside the decision flow; the workflow gathers them before it ends."""
        view = self._view()  # the state as of now, not as of when the activity runs
        event = ApprovalEvent(
            event_id=f"{view.approval_id}:{view.revision}:{event_type}",
            type=event_type,
            at=workflow.now(),
            approval=view,
        )
        self._notifications.append(asyncio.create_task(self._notify(event)))

    async def _notify(self, event: ApprovalEvent) -> None:
        try:
            webhook_ids = await workflow.execute_activity(
                ACT_PUBLISH,
                event,
                result_type=list[str],
                **NOTIFY_LOOKUP,
                summary=f"publish {event.type}",
            )
            deliveries = [
                workflow.execute_activity(
                    ACT_WEBHOOK,
                    WebhookDelivery(webhook_id=wid, event=event),
                    **NOTIFY_DELIVER,
                    summary=f"webhook {event.type}",
                )
                for wid in webhook_ids
            ]
            for wid, result in zip(
                webhook_ids, await asyncio.gather(*deliveries, return_exceptions=True), strict=False
            ):
                if isinstance(result, BaseException):
                    workflow.logger.warning("webhook %s gave up on %s: %s", wid, event.event_id, result)
        except ActivityError as exc:  # a notification failure never changes the approval's outcome
            workflow.logger.warning("could not publish %s: %s", event.event_id, exc)

    def _view(self) -> ApprovalView:
        return view_of(self._state, workflow.now(), workflow.info().workflow_id)

    def _show(self) -> None:
        """Search attributes make 'pending approvals' one saved query in the Web UI; details say who and what."""
        s = self._state
        status = str(s.status)
        if s.status == ApprovalStatus.time_locked and not workflow.patched(PATCH_TIME_LOCKED_SPELLING):
            status = LEGACY_TIME_LOCKED  # replaying a history that upserted the old spelling: upsert it again
        workflow.upsert_search_attributes(
            [
                keys.APPROVAL_STATE.value_set(status),
                keys.APPROVALS_HAD.value_set(len(s.approvals)),
                keys.APPROVALS_NEEDED.value_set(s.approvals_needed),
                keys.TENANT.value_set(s.tenant_id),
                keys.AMOUNT.value_set(min(s.operation.amount_atomic, keys.INT64_MAX)),
                keys.ASSET.value_set(s.operation.asset),
            ]
        )
        workflow.set_current_details(details_markdown(self._view()))


def _update_id() -> str | None:
    info = workflow.current_update_info()
    return info.id if info else None
