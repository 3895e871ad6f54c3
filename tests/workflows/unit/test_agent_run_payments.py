"""AgentRunWorkflow's paying tool: a real child PaymentWorkflow (and its real ApprovalWorkflow), activities stubbed.
The run follows the payment through its pushed progress: the approval it waits for, who approved, how it ended;
a cancelled run asks its payment to cancel (the stub sends the payment's real `cancel` Update, as the activity does).
"""

from __future__ import annotations

import json

from temporalio.exceptions import CancelledError

from paygent.domain import payment as dp
from paygent.domain.agent_run import RunEventType, RunStatus
from paygent.domain.payment import PaymentStatus
from paygent.llm.types import ToolCall
from tests.workflows.replay_support import replayer
from tests.workflows.unit.agent_runs import (
    calls_tools,
    cancels_the_payment,
    event,
    kinds,
    pay_call,
    run_agent,
    run_input,
    run_status_becomes,
    seqs,
)
from tests.workflows.unit.payments import decide
from tests.workflows.unit.stubs import (
    SELLER,
    TX_HASH,
    UNIT,
    X402_TX,
    Stubs,
    Turns,
    answer,
    payment_request,
)
from workflows import agent_types as at
from workflows import approval_types as ap
from workflows import payment_types as pt
from workflows import x402_types as x

URL = "https://api.example/report"
TOOL_START = [
    RunEventType.agent_started,
    RunEventType.agent_thinking,
    RunEventType.agent_thinking,
    RunEventType.tool_executing,
]
TOOL_END = [RunEventType.agent_thinking, RunEventType.agent_thinking, RunEventType.agent_completed]


def model_pays(amount: str) -> Turns:
    return Turns([calls_tools(1, pay_call(amount)), answer(2, "reported")])


def tool_result(stubs: Stubs) -> tuple[bool, dict]:
    [record] = stubs.args(at.ACT_RECORD_TOOL_RESULT)
    return record.outcome.ok, json.loads(record.outcome.text)


async def test_a_payment_needing_no_approval_runs_as_a_child_and_its_receipt_is_the_tool_result(env):
    inp = run_input()
    stubs = Stubs({at.ACT_LLM_STEP: model_pays("5")})
    ended = await run_agent(env, inp, stubs)
    assert ended.result.status == RunStatus.completed
    payment_id = at.agent_payment_id(inp.run_id, "call-pay")
    ok, result = tool_result(stubs)
    assert ok and result["payment_id"] == payment_id
    assert (result["status"], result["tx_hash"], result["amount"], result["block_number"]) == (
        PaymentStatus.confirmed,
        TX_HASH,
        "5",
        42,
    )
    [reserved] = stubs.args(pt.ACT_RESERVE_WITH_POLICY)  # the child payment, for the run's user and tenant
    assert (reserved.payment_id, reserved.amount_atomic, reserved.requested_by) == (payment_id, 5 * UNIT, "alice")
    assert {c.tenant for c in stubs.calls} == {inp.tenant_id}
    assert kinds(stubs) == [*TOOL_START, *TOOL_END]  # no approval: the run emits nothing about it
    assert seqs(stubs) == list(range(1, 9))


async def test_a_payment_waiting_for_approval_is_announced_and_followed_until_approved(env):
    inp = run_input()
    stubs = Stubs({at.ACT_LLM_STEP: model_pays("500")})
    payment_id = at.agent_payment_id(inp.run_id, "call-pay")
    waiting = []

    async def bob_approves(handle):
        waiting.append(await run_status_becomes(handle, RunStatus.awaiting_approval))
        await decide(env, payment_id, ap.Decision.approve, actor="bob")

    ended = await run_agent(env, inp, stubs, during=bob_approves)
    assert waiting[0]["step"] == 1 and ended.result.status == RunStatus.completed
    approval = [RunEventType.approval_requested, RunEventType.approval_progress, RunEventType.approval_decided]
    assert kinds(stubs) == [*TOOL_START, *approval, *TOOL_END]
    requested = event(stubs, RunEventType.approval_requested)
    assert (requested["tool_call_id"], requested["payment_id"], requested["approvals_needed"]) == (
        "call-pay",
        payment_id,
        1,
    )
    assert requested["approvers"] == ["bob", "carol", "dave"] and requested["edited"] is False
    progress = event(stubs, RunEventType.approval_progress)
    assert (progress["approver"], progress["approvals_had"], progress["approved_by"]) == ("bob", 1, ["bob"])
    assert event(stubs, RunEventType.approval_decided)["decision"] == "approved"
    ok, result = tool_result(stubs)
    assert ok and result["status"] == PaymentStatus.confirmed


async def test_a_rejected_payment_is_reported_to_the_model_and_the_run_goes_on(env):
    inp = run_input()
    stubs = Stubs({at.ACT_LLM_STEP: model_pays("500")})
    payment_id = at.agent_payment_id(inp.run_id, "call-pay")

    async def carol_rejects(handle):
        await run_status_becomes(handle, RunStatus.awaiting_approval)
        await decide(env, payment_id, ap.Decision.reject, actor="carol", reason="not in the budget")

    ended = await run_agent(env, inp, stubs, during=carol_rejects)
    assert ended.result.status == RunStatus.completed and ended.state["status"] == RunStatus.completed
    assert kinds(stubs) == [*TOOL_START, RunEventType.approval_requested, RunEventType.approval_decided, *TOOL_END]
    decided = event(stubs, RunEventType.approval_decided)
    assert (decided["decision"], decided["status"]) == ("rejected", PaymentStatus.cancelled)
    ok, result = tool_result(stubs)
    assert not ok and result["status"] == PaymentStatus.cancelled
    assert result["reason"] == "approval rejected: not in the budget"
    assert stubs.names(pt.ACT_SIGN_AND_SEND) == []


async def test_cancelling_a_run_cancels_the_payment_it_waits_on(env):
    inp = run_input()
    payment_id = at.agent_payment_id(inp.run_id, "call-pay")

    stubs = Stubs({at.ACT_LLM_STEP: model_pays("500"), at.ACT_CANCEL_PAYMENT: cancels_the_payment(env)})

    async def alice_cancels(handle):
        await run_status_becomes(handle, RunStatus.awaiting_approval)
        await handle.cancel()

    ended = await run_agent(env, inp, stubs, during=alice_cancels)
    assert ended.result is None and isinstance(ended.error.cause, CancelledError)
    assert ended.state["status"] == RunStatus.cancelled
    assert kinds(stubs) == [
        *TOOL_START,
        RunEventType.approval_requested,
        RunEventType.approval_decided,
        RunEventType.agent_failed,
    ]
    assert event(stubs, RunEventType.approval_decided)["decision"] == "cancelled"
    failed = event(stubs, RunEventType.agent_failed)
    assert (failed["status"], failed["payment_id"], failed["payment_status"]) == (
        RunStatus.cancelled,
        payment_id,
        "cancelled",
    )
    [cancel] = stubs.args(at.ACT_CANCEL_PAYMENT)
    assert (cancel.payment_id, cancel.actor, cancel.reason) == (payment_id, "alice", "the agent run was cancelled")
    assert stubs.args(pt.ACT_MARK_STATUS)[-1].status == PaymentStatus.cancelled  # the payment itself ended cancelled
    assert stubs.names(pt.ACT_SIGN_AND_SEND, at.ACT_RECORD_TOOL_RESULT) == []


async def test_a_time_locked_payment_shows_on_the_run_until_the_lock_ends(env):
    inp = run_input()
    stubs = Stubs({at.ACT_LLM_STEP: model_pays("5000")})  # 2 of 3 and a 1-hour time-lock
    payment_id = at.agent_payment_id(inp.run_id, "call-pay")

    async def two_approve(handle):
        await run_status_becomes(handle, RunStatus.awaiting_approval)
        await decide(env, payment_id, ap.Decision.approve, actor="bob")
        await decide(env, payment_id, ap.Decision.approve, actor="dave")
        await run_status_becomes(handle, RunStatus.time_locked)

    ended = await run_agent(env, inp, stubs, during=two_approve)  # the hour skips by
    assert ended.result.status == RunStatus.completed
    for workflow_id in (
        at.agent_workflow_id(inp.run_id),
        dp.payment_workflow_id(payment_id),
        ap.approval_workflow_id(payment_id),
    ):
        history = await env.client.get_workflow_handle(workflow_id).fetch_history()
        await replayer().replay_workflow(history)  # deterministic under the deployed sandbox and interceptors
    approval = [
        RunEventType.approval_requested,
        RunEventType.approval_progress,
        RunEventType.approval_progress,
        RunEventType.payment_time_locked,
    ]
    assert kinds(stubs) == [*TOOL_START, *approval, RunEventType.approval_decided, *TOOL_END]
    locked = event(stubs, RunEventType.payment_time_locked)
    assert locked["approved_by"] == ["bob", "dave"] and locked["until"] is not None
    assert event(stubs, RunEventType.approval_decided)["decision"] == "approved"
    assert tool_result(stubs)[1]["status"] == PaymentStatus.confirmed


async def test_an_x402_fetch_reports_what_the_server_answered(env):
    inp = run_input()
    call = ToolCall(id="call-fetch", name="x402_fetch", arguments={"url": URL, "max_amount": "0.1"})
    payment_id = at.agent_payment_id(inp.run_id, call.id)
    x402 = {"url": URL, "outcome": "paid", "response_status": 200, "body_excerpt": "the report", "transaction": X402_TX}
    row = at.PaymentSnapshot(
        payment_id=payment_id, status=PaymentStatus.confirmed, amount_atomic=UNIT // 100, to=SELLER, x402=x402
    )
    prepared = lambda p: at.PreparedPayment(  # noqa: E731  (what agent.prepare_payment records for x402_fetch)
        request=payment_request(
            0.1, payment_id=payment_id, tenant_id=p.tenant_id, kind="x402", url=URL, max_amount_atomic=UNIT // 10
        )
    )
    stubs = Stubs(
        {
            at.ACT_LLM_STEP: Turns([calls_tools(1, call), answer(2, "here is the report")]),
            at.ACT_PREPARE_PAYMENT: prepared,
            at.ACT_PAYMENT_STATUS: row,
        }
    )
    ended = await run_agent(env, inp, stubs)
    assert ended.result.status == RunStatus.completed
    assert stubs.names(x.ACT_X402_PROBE, x.ACT_X402_SIGN, x.ACT_X402_SEND, pt.ACT_SETTLE) == [
        x.ACT_X402_PROBE,
        x.ACT_X402_SIGN,
        x.ACT_X402_SEND,
        pt.ACT_SETTLE,
    ]
    assert stubs.args(at.ACT_PAYMENT_STATUS) == [payment_id]  # the server's answer is read from the row
    ok, result = tool_result(stubs)
    assert ok and (result["outcome"], result["response_status"], result["body"]) == ("paid", 200, "the report")
    assert (result["amount"], result["to"], result["tx_hash"], result["max_amount"]) == ("0.01", SELLER, X402_TX, "0.1")


async def test_a_payment_the_tool_cannot_prepare_is_an_error_for_the_model_and_nothing_starts(env):
    refused = at.PreparedPayment(error="asset: unknown asset 'EUR'; known: USDC")
    stubs = Stubs({at.ACT_LLM_STEP: model_pays("5"), at.ACT_PREPARE_PAYMENT: refused})
    ended = await run_agent(env, run_input(), stubs)
    assert ended.result.status == RunStatus.completed
    assert tool_result(stubs) == (False, {"error": "asset: unknown asset 'EUR'; known: USDC"})
    assert stubs.names(pt.ACT_RESERVE_WITH_POLICY, pt.ACT_MARK_STATUS) == []  # no child payment was started
