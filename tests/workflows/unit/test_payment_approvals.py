"""PaymentWorkflow with its real ApprovalWorkflow child (activities stubbed): decisions through real Updates,
the deadline and the time-lock on skipped time, the payment's own `cancel` Update before and after signing,
and an edit while pending (reserved again). Dev policy: <=100 tokens no approval, <=1,000 1 of bob/carol/dave,
<=10,000 2 of them and a 1-hour time-lock; alice initiates."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError

from paygent.domain.errors import ErrorType
from paygent.domain.payment import PaymentStatus
from tests.workflows.unit.payments import Gate, approval_view, decide, final_change, pay, status_becomes, statuses
from tests.workflows.unit.stubs import DEFAULTS, TX_HASH, UNIT, Stubs, payment_request
from workflows import approval_types as ap
from workflows import payment_types as pt
from workflows.payment import PaymentWorkflow

EXECUTED = [pt.ACT_SIGN_AND_SEND, pt.ACT_AWAIT_RECEIPT, pt.ACT_SETTLE]


def executed(stubs: Stubs) -> list[str]:
    return stubs.names(*EXECUTED)


def approval_decided(stubs: Stubs) -> ap.ApprovalView:
    """The approval as its closing audit row (approval.record_decision) recorded it."""
    [decided] = [r for r in stubs.args(ap.ACT_RECORD) if r.action == "approval.decided"]
    return decided.view


@pytest.mark.parametrize("via", ["update", "signal"])
async def test_an_approved_payment_is_executed_after_the_approval(env, via):
    req = payment_request(500)
    stubs = Stubs()

    async def bob_approves(handle):
        awaiting = await status_becomes(handle, PaymentStatus.awaiting_approval)
        assert awaiting.failure_reason is None
        if via == "update":  # as the API sends it
            # the Web UI's summary and Details panel say the same counts: 1 needed, from any of three
            described = await env.client.get_workflow_handle(ap.approval_workflow_id(req.payment_id)).describe()
            assert (await described.static_summary() or "").endswith("(1 approval needed from bob, carol or dave)"), (
                await described.static_summary()
            )
            panel = await described.static_details() or ""
            assert f"Requested by {req.requested_by}." in panel and f"Payment {req.payment_id}." in panel, panel
            assert "1 approval needed from bob, carol or dave (never the requester)." in panel, panel
            assert (await decide(env, req.payment_id, ap.Decision.approve, actor="bob")).status == "approved"
        else:  # as `temporal workflow signal --name approve` sends it
            view = await approval_view(env, req.payment_id)
            approval = env.client.get_workflow_handle(view.workflow_id)
            await approval.signal("approve", {"actor": "bob", "operation_hash": view.operation_hash})

    state = await pay(env, req, stubs, during=bob_approves)
    assert (state.status, state.tx_hash) == (PaymentStatus.confirmed, TX_HASH)
    assert statuses(stubs) == [PaymentStatus.awaiting_approval]  # signing records `submitted` with the send
    details = stubs.args(pt.ACT_MARK_STATUS)[0].details
    assert details == {"approvals_needed": 1, "approvers": ["bob", "carol", "dave"], "timelock_seconds": 0}
    [approved] = [r for r in stubs.args(ap.ACT_RECORD) if r.action == "approval.approve"]
    assert (approved.actor, approved.channel) == ("bob", "api" if via == "update" else "temporal")
    assert len(stubs.args(ap.ACT_SIGNAL_GATE)) == (via == "signal")  # a Signal asks the deployment first
    assert executed(stubs) == EXECUTED
    # the unedited operation is not reserved twice, and the policy came with the reservation
    assert stubs.names(pt.ACT_RESERVE, pt.ACT_RESERVE_WITH_POLICY, ap.ACT_LOAD_POLICY) == [pt.ACT_RESERVE_WITH_POLICY]


@pytest.mark.parametrize(
    ("decision", "fields", "actor", "reason"),
    [
        ("reject", {"actor": "carol", "reason": "unknown vendor"}, "carol", "approval rejected: unknown vendor"),
        ("cancel", {"actor": "alice", "reason": "typo"}, "alice", "approval cancelled: typo"),
        (None, {}, "system", "approval expired: no decision before"),  # 24 hours skip by
    ],
    ids=["rejected", "cancelled", "expired"],
)
async def test_an_approval_that_does_not_end_approved_cancels_the_payment(env, decision, fields, actor, reason):
    req = payment_request(500)
    stubs = Stubs()

    async def decided(handle):
        await status_becomes(handle, PaymentStatus.awaiting_approval)
        await approval_view(env, req.payment_id)
        if decision:
            await decide(env, req.payment_id, decision, **fields)

    state = await pay(env, req, stubs, during=decided)
    assert state.status == PaymentStatus.cancelled and state.failure_reason.startswith(reason)
    assert executed(stubs) == []
    change = final_change(stubs)  # a final status without a hold: payments.mark_status releases the reservation
    assert (change.status, change.actor, change.hold_reservation) == (PaymentStatus.cancelled, actor, False)
    assert statuses(stubs) == [PaymentStatus.awaiting_approval, PaymentStatus.cancelled]


async def test_cancel_while_awaiting_approval_cancels_the_approval_too(env):
    req = payment_request(500)
    stubs = Stubs()
    answered = []

    async def alice_cancels(handle):
        await status_becomes(handle, PaymentStatus.awaiting_approval)
        await approval_view(env, req.payment_id)
        cancel = pt.PaymentCancelRequest(actor="alice", reason="wrong invoice")
        answered.append(await handle.execute_update(PaymentWorkflow.cancel, cancel))

    state = await pay(env, req, stubs, during=alice_cancels)
    assert answered == [state]  # the Update answers with the final state
    assert (state.status, state.failure_reason) == (
        PaymentStatus.cancelled,
        "cancelled by alice via api: wrong invoice",
    )
    assert final_change(stubs).actor == "alice"
    assert executed(stubs) == []
    assert approval_decided(stubs).status == "cancelled"  # the child's audited end


async def test_cancel_while_pending_stops_before_the_approval_opens(env):
    gate = Gate(DEFAULTS[pt.ACT_RESERVE_WITH_POLICY])
    stubs = Stubs({pt.ACT_RESERVE_WITH_POLICY: gate})

    async def cancel_during_reserve(handle):
        await gate.entered.wait()
        update = await handle.start_update(
            PaymentWorkflow.cancel, pt.PaymentCancelRequest(actor="alice"), wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        gate.opened.set()
        assert (await update.result()).status == PaymentStatus.cancelled

    state = await pay(env, payment_request(500), stubs, during=cancel_during_reserve)
    assert (state.status, state.failure_reason) == (PaymentStatus.cancelled, "cancelled by alice via api")
    assert statuses(stubs) == [PaymentStatus.cancelled]  # never awaiting_approval: no approval was opened
    assert executed(stubs) == []


async def test_cancel_after_signing_is_refused_and_the_payment_completes(env):
    gate = Gate(DEFAULTS[pt.ACT_AWAIT_RECEIPT])
    stubs = Stubs({pt.ACT_AWAIT_RECEIPT: gate})
    refused = []

    async def cancel_while_submitted(handle):
        await gate.entered.wait()
        try:  # an accepted cancel would wait for an end that the closed gate holds back: bound it
            await status_becomes(handle, PaymentStatus.submitted)
            async with asyncio.timeout(10):
                with pytest.raises(WorkflowUpdateFailedError) as err:
                    await handle.execute_update(PaymentWorkflow.cancel, pt.PaymentCancelRequest(actor="alice"))
            refused.append(err.value.cause)
        finally:
            gate.opened.set()

    state = await pay(env, payment_request(50), stubs, during=cancel_while_submitted)
    assert state.status == PaymentStatus.confirmed
    [cause] = refused
    assert isinstance(cause, ApplicationError) and cause.type == ErrorType.payment_not_cancellable
    assert "payment is submitted" in cause.message
    assert executed(stubs) == EXECUTED


async def test_a_time_locked_payment_executes_once_the_lock_ends(env):
    req = payment_request(5_000)
    stubs = Stubs()
    locked = []

    async def two_approve(handle):
        await status_becomes(handle, PaymentStatus.awaiting_approval)
        await decide(env, req.payment_id, ap.Decision.approve, actor="bob")
        await decide(env, req.payment_id, ap.Decision.approve, actor="carol")
        locked.append(await status_becomes(handle, PaymentStatus.time_locked))
        assert executed(stubs) == []  # nothing moves during the lock

    state = await pay(env, req, stubs, during=two_approve)  # the hour skips by
    assert locked[0].status == PaymentStatus.time_locked and state.status == PaymentStatus.confirmed
    assert statuses(stubs) == [PaymentStatus.awaiting_approval, PaymentStatus.time_locked]
    view = approval_decided(stubs)
    until = stubs.args(pt.ACT_MARK_STATUS)[1].details["until"]
    assert until == view.timelock_until.isoformat()
    assert view.status == "approved" and view.decided_at >= view.timelock_until
    assert timedelta(hours=1) <= view.timelock_until - view.opened_at < timedelta(hours=1, minutes=1)
    assert executed(stubs) == EXECUTED


@pytest.mark.parametrize("fits", [True, False], ids=["fits", "over-limit"])
async def test_an_edit_while_pending_is_reserved_again_with_the_edited_amount(env, fits):
    req = payment_request(500)
    again = pt.ReserveOutcome(reserved=fits, limit=None if fits else "per_payment", message="600 over 550")
    stubs = Stubs({pt.ACT_RESERVE: again})  # the first reservation is payments.reserve_with_policy

    async def alice_edits_bob_approves(handle):
        await status_becomes(handle, PaymentStatus.awaiting_approval)
        await decide(env, req.payment_id, ap.Decision.edit, actor="alice", amount_atomic=600 * UNIT)
        await decide(env, req.payment_id, ap.Decision.approve, actor="bob")  # approves the edited operation's hash

    state = await pay(env, req, stubs, during=alice_edits_bob_approves)
    reserved = stubs.args(pt.ACT_RESERVE_WITH_POLICY) + stubs.args(pt.ACT_RESERVE)
    assert [r.amount_atomic for r in reserved] == [500 * UNIT, 600 * UNIT]
    if fits:
        assert state.status == PaymentStatus.confirmed
        assert [r.amount_atomic for r in stubs.args(pt.ACT_SIGN_AND_SEND)] == [600 * UNIT]
        assert stubs.args(pt.ACT_SETTLE)[0].amount_atomic == 600 * UNIT
    else:
        assert (state.status, state.failure_reason) == (PaymentStatus.refused, "per_payment: 600 over 550")
        assert executed(stubs) == []


async def test_an_approval_workflow_that_fails_ends_the_payment_failed_not_stuck(env):
    audit_down = ApplicationError("audit log refused the row", type="AuditRefused", non_retryable=True)
    stubs = Stubs({ap.ACT_RECORD: audit_down})  # the approval cannot record that it opened: it fails
    state = await pay(env, payment_request(500), stubs)
    # the reason names what failed inside the approval, not just "Activity task failed"
    assert state.status == PaymentStatus.failed
    assert state.failure_reason == "AuditRefused: audit log refused the row", state.failure_reason
    assert statuses(stubs) == [PaymentStatus.awaiting_approval, PaymentStatus.failed]
    assert executed(stubs) == []


async def test_terms_that_are_not_a_valid_operation_end_the_payment_failed_before_any_approval(env):
    """A recipient the edge should have refused: the workflow ends `failed` (reservation released), never wedged."""
    stubs = Stubs()
    state = await pay(env, payment_request(500, to="not-an-address"), stubs)
    assert state.status == PaymentStatus.failed
    assert state.failure_reason.startswith("not a valid operation to approve: to:"), state.failure_reason
    assert statuses(stubs) == [PaymentStatus.failed] and executed(stubs) == []
