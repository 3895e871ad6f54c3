"""PaymentWorkflow without approvals, on stub activities: limits, the transfer steps, the receipt's verdicts,
data errors, x402, and local steps. Each test asserts the outcome and what the activities were asked, in order."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError

from paygent.domain.errors import ErrorType
from paygent.domain.payment import PaymentKind, PaymentStatus
from tests.workflows.unit.payments import Handles, final_change, pay, statuses
from tests.workflows.unit.stubs import (
    DEFAULTS,
    SELLER,
    TX_HASH,
    UNIT,
    X402_TX,
    Stubs,
    payment_request,
    x402_sent,
)
from workflows import payment_types as pt
from workflows import x402_types as x
from workflows.chain_types import RECEIPT_WAIT_ACTIVITY_ID

# one activity per side-effect boundary: the reservation reads the policy; signing sends and records `submitted`
TRANSFER_STEPS = [pt.ACT_RESERVE_WITH_POLICY, pt.ACT_SIGN_AND_SEND, pt.ACT_AWAIT_RECEIPT, pt.ACT_SETTLE]


async def test_a_payment_over_the_limits_is_refused_before_anything_is_signed(env):
    refused = pt.ReserveOutcome(reserved=False, limit="daily_limit", message="50 of 40 left")
    stubs = Stubs({pt.ACT_RESERVE_WITH_POLICY: refused})
    state = await pay(env, payment_request(50), stubs)
    assert (state.status, state.failure_reason) == (PaymentStatus.refused, "daily_limit: 50 of 40 left")
    assert stubs.names() == [pt.ACT_RESERVE_WITH_POLICY, pt.ACT_MARK_STATUS]
    assert final_change(stubs).hold_reservation is False


async def test_a_payment_needing_no_approval_signs_broadcasts_waits_and_settles_once_each(env):
    req = payment_request(50)
    stubs = Stubs()
    state = await pay(env, req, stubs)
    assert state == pt.PaymentState(
        payment_id=req.payment_id, status=PaymentStatus.confirmed, tx_hash=TX_HASH, block_number=42
    )
    assert stubs.names() == TRANSFER_STEPS
    assert statuses(stubs) == []  # no status change of its own: signing records `submitted` with the send
    assert stubs.args(pt.ACT_SIGN_AND_SEND) == [req]
    [settlement] = stubs.args(pt.ACT_SETTLE)
    assert (settlement.to, settlement.amount_atomic, settlement.receipt.tx_hash) == (req.to, 50 * UNIT, TX_HASH)
    assert {c.tenant for c in stubs.calls} == {req.tenant_id}  # the tenant interceptor scoped every step


async def test_a_reverted_transfer_is_settled_as_failed_with_the_revert_reason(env):
    reverted = pt.ReceiptResult(tx_hash=TX_HASH, succeeded=False, block_number=43, gas_used=9, revert_reason="paused")
    stubs = Stubs({pt.ACT_AWAIT_RECEIPT: reverted})
    state = await pay(env, payment_request(50), stubs)
    assert (state.status, state.failure_reason, state.block_number) == (
        PaymentStatus.failed,
        "TransferReverted: paused",
        43,
    )
    assert stubs.names() == TRANSFER_STEPS
    assert stubs.args(pt.ACT_SETTLE)[0].receipt.succeeded is False


async def test_a_receipt_wait_that_gave_up_leaves_the_payment_submitted_for_the_reconciler(env):
    gave_up = pt.ReceiptResult(tx_hash=TX_HASH, succeeded=False, block_number=None, gas_used=0, pending=True)
    stubs = Stubs({pt.ACT_AWAIT_RECEIPT: gave_up})
    state = await pay(env, payment_request(50), stubs)
    assert (state.status, state.tx_hash, state.failure_reason) == (PaymentStatus.submitted, TX_HASH, None)
    assert stubs.names() == TRANSFER_STEPS[:-1]  # not settled: the reservation stays
    assert statuses(stubs) == []


async def test_the_receipt_wait_is_scheduled_for_the_chain_follower_to_answer(env):
    """Since `receipt-wait-followed`: a fixed activity id the follower can address, no heartbeat timeout (nobody
    runs the wait meanwhile), and a whole-wait bound."""
    handles = Handles()
    state = await pay(env, payment_request(50), Stubs(), during=handles)
    assert state.status == PaymentStatus.confirmed
    history = await handles[0].fetch_history()
    [wait] = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == pt.ACT_AWAIT_RECEIPT
    ]
    assert wait.activity_id == RECEIPT_WAIT_ACTIVITY_ID
    assert wait.heartbeat_timeout.ToSeconds() == 0
    assert wait.schedule_to_close_timeout.ToSeconds() == 6 * 3600


@pytest.mark.parametrize("local_steps", [False, True], ids=["activity", "local-activity"])
async def test_a_value_the_database_refuses_ends_the_payment_failed_instead_of_retrying(env, local_steps):
    # what asyncpg raises for a NUL in text; the worker's DataErrorInterceptor makes it a final DataRefused
    refused = asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence 0x00")
    stubs = Stubs({pt.ACT_RESERVE_WITH_POLICY: refused})
    state = await pay(env, payment_request(50, memo="nul", local_steps=local_steps), stubs)
    assert state.status == PaymentStatus.failed
    assert state.failure_reason.startswith(f"{ErrorType.data_refused}: the database refused a value: ")
    assert stubs.names() == [pt.ACT_RESERVE_WITH_POLICY, pt.ACT_MARK_STATUS]  # one attempt, then the audited end
    assert final_change(stubs).status == PaymentStatus.failed


async def test_local_steps_take_the_same_steps_as_local_activities(env):
    req = payment_request(50, local_steps=True)
    stubs = Stubs()
    handles = Handles()
    state = await pay(env, req, stubs, during=handles)
    assert state.status == PaymentStatus.confirmed
    assert stubs.names() == TRANSFER_STEPS
    history = await handles[0].fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    assert scheduled == [pt.ACT_AWAIT_RECEIPT]  # only the long receipt wait stays a regular activity
    assert len(markers) >= len(TRANSFER_STEPS) - 1  # one marker per local step (and the patch markers)


async def test_a_local_step_not_done_within_its_budget_is_taken_again_as_a_regular_activity(temporal_env):
    # a saturated worker or a held row: the local attempt outlasts LOCAL_ATTEMPT (4 s), far inside the workflow
    # task timeout; the workflow task ends scheduling the same step as a regular activity, which completes it.
    # On the dev server: the time-skipping server's clock does not bound a local activity's schedule-to-close.
    signed = DEFAULTS[pt.ACT_SIGN_AND_SEND]

    def stuck_while_local(req):
        return asyncio.sleep(30, result=signed(req)) if activity.info().is_local else signed(req)

    stubs = Stubs({pt.ACT_SIGN_AND_SEND: stuck_while_local})
    handles = Handles()
    state = await pay(temporal_env, payment_request(50, local_steps=True), stubs, during=handles)
    assert (state.status, state.tx_hash) == (PaymentStatus.confirmed, TX_HASH)
    assert stubs.names(pt.ACT_AWAIT_RECEIPT, pt.ACT_SETTLE) == TRANSFER_STEPS[2:]
    history = await handles[0].fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == [pt.ACT_SIGN_AND_SEND, pt.ACT_AWAIT_RECEIPT]
    timed_out = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT]
    assert timed_out == []  # the workflow task never outlived its timeout


def x402_request(**over):
    return payment_request(
        0.1, kind=PaymentKind.x402, url="https://api.example/report", max_amount_atomic=UNIT // 10, **over
    )


async def test_x402_a_url_that_asks_no_payment_is_cancelled_with_nothing_signed(env):
    probe = x.X402ProbeResult(payment_id="p", payment_required=False, status_code=200)
    stubs = Stubs({x.ACT_X402_PROBE: probe})
    state = await pay(env, x402_request(), stubs)
    assert state.status == PaymentStatus.cancelled and "answered 200 without asking for payment" in state.failure_reason
    assert stubs.names() == [x.ACT_X402_PROBE, pt.ACT_MARK_STATUS]
    assert final_change(stubs).hold_reservation is False


async def test_x402_a_price_the_policy_refuses_is_refused_at_the_probe(env):
    refused = ApplicationError("price 5 above the cap 0.1", type=ErrorType.x402_refused, non_retryable=True)
    stubs = Stubs({x.ACT_X402_PROBE: refused})
    req = x402_request()
    state = await pay(env, req, stubs)
    assert (state.status, state.failure_reason) == (
        PaymentStatus.refused,
        f"{ErrorType.x402_refused}: price 5 above the cap 0.1",
    )
    assert stubs.names() == [x.ACT_X402_PROBE, pt.ACT_MARK_STATUS]
    assert stubs.args(x.ACT_X402_PROBE)[0].policy.max_amount_atomic == UNIT // 10


X402_STEPS = [
    x.ACT_X402_PROBE,
    pt.ACT_RESERVE_WITH_POLICY,
    pt.ACT_MARK_STATUS,  # signing
    x.ACT_X402_SIGN,
    pt.ACT_MARK_STATUS,  # submitted
    x.ACT_X402_SEND,
]


async def test_x402_a_paid_request_settles_the_price_the_server_asked(env):
    stubs = Stubs()
    req = x402_request()
    state = await pay(env, req, stubs)
    assert (state.status, state.tx_hash) == (PaymentStatus.confirmed, X402_TX)
    assert stubs.names() == [*X402_STEPS, pt.ACT_SETTLE]
    assert stubs.args(pt.ACT_RESERVE_WITH_POLICY)[0].amount_atomic == UNIT // 100  # the probed price, not the cap
    [settlement] = stubs.args(pt.ACT_SETTLE)
    assert (settlement.to, settlement.amount_atomic) == (SELLER, UNIT // 100)


@pytest.mark.parametrize(
    ("sent", "status", "reason"),
    [
        (x.SERVED_UNSETTLED, PaymentStatus.cancelled, "answered 200 without settling: nothing was paid"),
        (
            ApplicationError("answered 404", type=ErrorType.x402_rejected, non_retryable=True),
            PaymentStatus.refused,
            "X402Rejected",
        ),
    ],
    ids=["served_unsettled", "rejected"],
)
async def test_x402_a_signed_authorization_not_settled_keeps_its_reservation_held(env, sent, status, reason):
    answer = sent if isinstance(sent, BaseException) else (lambda r: x402_sent(r.payment_id, sent))
    stubs = Stubs({x.ACT_X402_SEND: answer})
    state = await pay(env, x402_request(), stubs)
    assert state.status == status and reason in state.failure_reason
    assert "the reservation is held until then" in state.failure_reason
    assert stubs.names() == [*X402_STEPS, pt.ACT_MARK_STATUS]
    change = final_change(stubs)
    assert (change.status, change.hold_reservation) == (status, True)
