"""AgentRunWorkflow's paying tool at its limits: a payment that outlasts the run's wait (8 days, skipped) is
cancelled by the run; a payment an earlier execution already started is followed through its row, never paid
again (the child id is derived from the run and tool call, and started with REJECT_DUPLICATE)."""

from __future__ import annotations

import json

from paygent.domain.agent_run import RunEventType, RunStatus
from paygent.domain.approval_policy import ApprovalPolicy, Tier
from paygent.domain.payment import PaymentStatus
from tests.workflows.unit.agent_runs import (
    calls_tools,
    cancels_the_payment,
    event,
    kinds,
    pay_call,
    run_agent,
    run_input,
)
from tests.workflows.unit.payments import pay
from tests.workflows.unit.stubs import TX_HASH, Stubs, Turns, answer, payment_request
from workflows import agent_types as at
from workflows import payment_types as pt

DAY = 24 * 3600


def tool_result(stubs: Stubs) -> tuple[bool, dict]:
    [record] = stubs.args(at.ACT_RECORD_TOOL_RESULT)
    return record.outcome.ok, json.loads(record.outcome.text)


async def test_a_payment_still_waiting_after_eight_days_is_cancelled_by_the_run(env):
    # approvers get a month: longer than the run waits for a payment
    slow = ApprovalPolicy(
        tiers=[Tier(approvals_required=1, approvers=["bob", "carol"], approval_timeout_seconds=30 * DAY)]
    )
    inp = run_input()
    stubs = Stubs(
        {
            at.ACT_LLM_STEP: Turns([calls_tools(1, pay_call("5")), answer(2, "it timed out")]),
            pt.ACT_RESERVE_WITH_POLICY: pt.ReserveOutcome(reserved=True, policy=slow),
            at.ACT_CANCEL_PAYMENT: cancels_the_payment(env),
        }
    )
    ended = await run_agent(env, inp, stubs)  # eight days skip by
    assert ended.result.status == RunStatus.completed
    [cancel] = stubs.args(at.ACT_CANCEL_PAYMENT)
    assert (cancel.actor, cancel.reason) == ("alice", "no outcome within 8 days, 0:00:00")
    assert event(stubs, RunEventType.approval_decided)["decision"] == "cancelled"
    ok, result = tool_result(stubs)
    assert not ok and result["status"] == PaymentStatus.cancelled
    assert stubs.args(pt.ACT_MARK_STATUS)[-1].status == PaymentStatus.cancelled  # the payment itself ended
    assert stubs.names(pt.ACT_SIGN_AND_SEND) == []


async def test_a_payment_an_earlier_execution_started_is_followed_not_paid_again(env):
    inp = run_input()
    payment_id = at.agent_payment_id(inp.run_id, "call-pay")
    earlier = Stubs()
    first = await pay(env, payment_request(5, payment_id=payment_id, tenant_id=inp.tenant_id), earlier)
    assert first.status == PaymentStatus.confirmed
    row = at.PaymentSnapshot(payment_id=payment_id, status=PaymentStatus.confirmed, tx_hash=TX_HASH, block_number=42)
    stubs = Stubs(
        {at.ACT_LLM_STEP: Turns([calls_tools(1, pay_call("5")), answer(2, "paid")]), at.ACT_PAYMENT_STATUS: row}
    )
    ended = await run_agent(env, inp, stubs)
    assert ended.result.status == RunStatus.completed
    assert stubs.names(pt.ACT_RESERVE_WITH_POLICY, pt.ACT_SIGN_AND_SEND) == []  # no second payment
    assert stubs.args(at.ACT_PAYMENT_STATUS) == [payment_id]  # read from its row
    ok, result = tool_result(stubs)
    assert ok and (result["status"], result["tx_hash"]) == (PaymentStatus.confirmed, TX_HASH)
    assert RunEventType.approval_requested not in kinds(stubs)
