"""The `swap` tool in keyless runs (the offline planner) on the seeded USDC/EURC pool (tests/conftest.py `swap_dev`),
through the real API, worker, Postgres, Redis, Temporal and anvil: the stream shows the quote, then the result;
a swap above the wallet's approval tier pauses the run until bob approves; an agent without a grant on the wallet
is refused, and nothing is recorded or signed."""

from __future__ import annotations

import json
import uuid

import sqlalchemy as sa
from temporalio.testing import ActivityEnvironment

from activities.agent_swaps import AgentSwapActivities
from paygent.db.policies import save_policy
from paygent.db.schema import payments
from paygent.domain.approval_policy import ApprovalPolicy, Tier
from paygent.llm.types import ToolCall
from tests.agents.helpers import of_type, sse_events, start_run, types, wait_run
from tests.agents.test_approvals import approval_state
from tests.api.helpers import auth, funded_wallet
from tests.authz.test_agents import make_agent
from tests.swaps import helpers as h
from tests.workflows.replay_support import replay_all
from workflows import agent_types as at
from workflows.approval_client import send_decision
from workflows.approval_types import ApproveRequest

ONE_APPROVAL_ABOVE_5 = ApprovalPolicy(
    tiers=[
        Tier(max_amount_atomic=5 * 10**6, approvals_required=0),
        Tier(max_amount_atomic=None, approvals_required=1, approvers=["bob"]),
    ]
)


async def _row(db_engine, payment_id: str):
    async with db_engine.connect() as conn:
        return (
            (await conn.execute(sa.select(payments).where(payments.c.id == uuid.UUID(payment_id)))).mappings().first()
        )


async def test_keyless_run_swaps_on_the_pool_and_answers_with_the_amounts(
    http, dev, app_settings, anvil_rpc, token_address, eurc_address, db_engine
):
    wallet = await funded_wallet(http, dev, app_settings, 50)
    run = await start_run(http, dev, "swap 10 USDC to EURC", wallet_id=wallet["id"])
    events = await sse_events(http, dev, run["id"], timeout=90)

    assert types(events)[0] == "agent_started" and types(events)[-1] == "agent_completed", types(events)
    executing = of_type(events, "tool_executing")[0]["data"]
    assert executing["tool"] == "swap"
    assert executing["arguments"] == {"from_asset": "USDC", "to_asset": "EURC", "amount": "10"}
    # the quote first, then the result, in that order, both bound to the tool call
    kinds = types(events)
    assert kinds.index("swap_quoted") < kinds.index("swap_settled") < kinds.index("tool_completed")
    quoted = of_type(events, "swap_quoted")[0]["data"]
    settled = of_type(events, "swap_settled")[0]["data"]
    assert quoted["tool_call_id"] == settled["tool_call_id"] == executing["tool_call_id"]
    q = quoted["quote"]
    assert q["from_asset"] == "USDC" and q["to_asset"] == "EURC" and q["amount"] == "10"
    assert q["text"].startswith("Swap 10 USDC -> >= ") and "via Uniswap V2" in q["text"]
    assert settled["status"] == "confirmed" and settled["amount_in"] == "10", settled
    assert "approval_requested" not in kinds  # 10 USDC needs no approval on this wallet

    swap_id = at.agent_payment_id(run["id"], executing["tool_call_id"])
    assert settled["payment_id"] == swap_id
    view = await h.wait_swap(http, dev, swap_id)
    assert view["status"] == "confirmed" and view["amount_out"] == settled["amount_out"]
    assert int(view["amount_out_atomic"]) >= int(q["min_amount_out_atomic"])
    row = await _row(db_engine, swap_id)
    assert row["kind"] == "swap" and row["idempotency_key"] == f"agent-run:{run['id']}:{executing['tool_call_id']}"
    # the chain agrees: 10 USDC out, the reported EURC in, no allowance left
    usdc, eurc = await h.balances(anvil_rpc, token_address, eurc_address, wallet["address"])
    assert usdc == 40 * 10**6 and eurc == int(view["amount_out_atomic"])
    assert await h.allowance(anvil_rpc, token_address, wallet["address"], app_settings.swap_router_address) == 0
    # the model read the amounts and the answer gives them
    result = json.loads(of_type(events, "tool_completed")[0]["data"]["result"])
    assert result["amount_out"] == view["amount_out"] and result["tx_hash"] == view["tx_hash"]
    answer = events[-1]["data"]["answer"]
    assert f"Swapped 10 USDC for {view['amount_out']} EURC" in answer and view["tx_hash"] in answer, answer
    final = await wait_run(http, dev, run["id"])
    assert final["status"] == "completed" and final["steps"] == 2


async def test_a_swap_that_needs_approval_pauses_the_run_then_continues_after_an_approve(
    http, dev, app_settings, temporal_env, db_engine, anvil_rpc, token_address, eurc_address
):
    wallet = await funded_wallet(http, dev, app_settings, 50)
    async with db_engine.begin() as conn:
        await save_policy(
            conn, dev["tenant"]["id"], ONE_APPROVAL_ABOVE_5, actor="test", channel="api", wallet_id=wallet["id"]
        )
    run = await start_run(http, dev, "swap 10 USDC for EURC", wallet_id=wallet["id"])
    seen: list[tuple[str, str]] = []

    async def on_event(event: dict) -> None:
        if event["type"] != "approval_requested":
            return
        r = await http.get(f"/v1/agent-runs/{run['id']}", headers=auth(dev))
        swap = await http.get(f"/v1/swaps/{event['data']['payment_id']}", headers=auth(dev))
        seen.append((r.json()["status"], swap.json()["status"]))
        # paused: nothing left the wallet while the approval is open
        usdc, _ = await h.balances(anvil_rpc, token_address, eurc_address, wallet["address"])
        assert usdc == 50 * 10**6
        view = await approval_state(temporal_env.client, event["data"]["payment_id"])
        assert view.approvals_needed == 1 and view.operation.amount_atomic == 10 * 10**6
        await send_decision(
            temporal_env.client,
            view.approval_id,
            "approve",
            ApproveRequest(actor="bob", channel="api", operation_hash=view.operation_hash),
        )

    events = await sse_events(http, dev, run["id"], on_event=on_event, timeout=120)
    assert seen == [("awaiting_approval", "awaiting_approval")]
    kinds = types(events)
    assert (
        kinds.index("swap_quoted")
        < kinds.index("approval_requested")
        < kinds.index("approval_decided")
        < kinds.index("swap_settled")
    ), kinds
    assert of_type(events, "approval_decided")[0]["data"]["decision"] == "approved"
    settled = of_type(events, "swap_settled")[0]["data"]
    assert settled["status"] == "confirmed" and settled["amount_out"], settled
    assert kinds[-1] == "agent_completed"
    assert f"for {settled['amount_out']} EURC: confirmed" in events[-1]["data"]["answer"]
    usdc, eurc = await h.balances(anvil_rpc, token_address, eurc_address, wallet["address"])
    assert usdc == 40 * 10**6 and eurc > 0
    final = await wait_run(http, dev, run["id"])
    assert final["status"] == "completed"
    # the run's and its swap's histories replay on today's code (the patched path is deterministic)
    swap_wf = f"payment-{settled['payment_id']}"
    histories = [
        await temporal_env.client.get_workflow_handle(wid).fetch_history()
        for wid in (at.agent_workflow_id(run["id"]), swap_wf)
    ]
    assert await replay_all(histories) == {}


async def test_an_agent_without_a_grant_is_refused_and_nothing_is_signed(
    http, dev, app_settings, db_engine, anvil_rpc, temporal_env
):
    granted = await funded_wallet(http, dev, app_settings, 20)
    other = await funded_wallet(http, dev, app_settings, 20)  # alice's; the agent holds no grant on it
    agent = await make_agent(http, dev, [granted["id"]])
    swaps_before = (await temporal_env.client.count_workflows("WorkflowType = 'SwapWorkflow'")).count
    block_before = await h.w3(anvil_rpc).eth.block_number

    # the door: a run as the agent on a wallet it is not granted does not start
    r = await http.post(
        "/v1/agent-runs",
        json={"message": "swap 10 USDC to EURC", "wallet_id": other["id"], "agent_id": agent["id"]},
        headers=auth(dev),
    )
    assert r.status_code in (403, 404, 422) and r.json()["error"]["field"] == "wallet_id", r.text

    # the tool itself (a grant withdrawn mid-run): the swap activity refuses for the model, records nothing
    run_id, call_id = str(uuid.uuid4()), "call-1"
    prepared = await ActivityEnvironment().run(
        AgentSwapActivities(db_engine, app_settings).prepare_swap,
        at.PreparePayment(
            run_id=run_id,
            tenant_id=dev["tenant"]["id"],
            user_id=agent["id"],
            user_name=agent["name"],
            wallet_id=other["id"],
            call=ToolCall(
                id=call_id, name="swap", arguments={"from_asset": "USDC", "to_asset": "EURC", "amount": "10"}
            ),
        ),
    )
    assert prepared.request is None and prepared.error is not None and "no spend grant" in prepared.error
    assert await _row(db_engine, at.agent_payment_id(run_id, call_id)) is None
    assert (await temporal_env.client.count_workflows("WorkflowType = 'SwapWorkflow'")).count == swaps_before
    assert await h.w3(anvil_rpc).eth.block_number == block_before  # nothing signed, nothing mined
