"""Cancelling a run: in-flight activities are cancelled, a signed payment is never cut off half-way."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError

from paygent.chain.rpc import async_web3
from tests.agents.helpers import of_type, sse_events, start_run, wait_run
from tests.agents.test_worker_crash import _submitted_payment
from tests.api.helpers import auth, new_recipient, transfers_to, wait_final
from tests.fakes.llm_server import Reply


async def test_cancel_during_a_slow_llm_step_cancels_it_and_ends_the_run_cancelled(
    llm_stack, fake_llm, dev, temporal_env
):
    fake_llm.script("anthropic", Reply(text="too late", delay=6))
    http = llm_stack.http
    run = await start_run(http, dev, "think hard")
    thinking = asyncio.Event()

    async def on_event(event: dict) -> None:
        if event["type"] == "agent_thinking":
            thinking.set()

    stream = asyncio.create_task(sse_events(http, dev, run["id"], on_event=on_event, timeout=15))
    await asyncio.wait_for(thinking.wait(), 10)
    while not fake_llm.requests("anthropic"):  # the LLM call is in flight
        await asyncio.sleep(0.05)
    cancelled_at = asyncio.get_running_loop().time()
    r = await http.post(f"/v1/agent-runs/{run['id']}/cancel", headers=auth(dev))
    assert r.status_code == 202 and r.json()["status"] == "cancelling"
    events = await stream
    assert asyncio.get_running_loop().time() - cancelled_at < 4  # not waiting for the model's 6 s answer

    assert events[-1]["type"] == "agent_failed" and events[-1]["data"]["status"] == "cancelled"
    assert "cancelled by alice via api" in events[-1]["data"]["error"]
    final = await wait_run(http, dev, run["id"])
    assert final["status"] == "cancelled" and final["answer"] is None
    handle = temporal_env.client.get_workflow_handle(run["workflow_id"])
    with pytest.raises(WorkflowFailureError) as ended:
        await handle.result()
    assert isinstance(ended.value.cause, CancelledError)
    history = await handle.fetch_history()
    kinds = [e.event_type for e in history.events]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in kinds
    assert kinds[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED
    again = await http.post(f"/v1/agent-runs/{run['id']}/cancel", headers=auth(dev))
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


async def test_cancel_while_the_payment_is_on_chain_lets_it_settle_exactly_once(http, dev, app_settings, db_engine):
    w3 = async_web3(app_settings.rpc_url)
    to = new_recipient()
    await w3.provider.make_request("evm_setAutomine", [False])
    try:
        run = await start_run(http, dev, f"pay 2 USDC to {to}")
        payment = await _submitted_payment(db_engine, run["id"])
        r = await http.post(f"/v1/agent-runs/{run['id']}/cancel", headers=auth(dev))
        assert r.status_code == 202
        final = await wait_run(http, dev, run["id"])
    finally:
        await w3.provider.make_request("evm_setAutomine", [True])
        await w3.provider.make_request("evm_mine", [])
    events = await sse_events(http, dev, run["id"])
    failed = of_type(events, "agent_failed")[0]["data"]
    assert final["status"] == "cancelled" and failed["status"] == "cancelled"
    assert failed["payment_id"] == str(payment["id"]) and failed["payment_status"] == "submitted"
    settled = await wait_final(http, dev, str(payment["id"]))  # abandoned by the run, not terminated
    assert settled["status"] == "confirmed" and settled["tx_hash"] == payment["tx_hash"]
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 1
