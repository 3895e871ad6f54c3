"""Keyless runs (the offline planner) through the real API, worker, Postgres, Redis and anvil."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from paygent.db.schema import payments
from tests.agents.helpers import of_type, sse_events, start_run, types, wait_run
from tests.api.helpers import auth, new_recipient, token_balance, transfers_to
from workflows.agent_types import agent_payment_id


async def test_keyless_run_pays_on_chain_and_answers_with_the_tx_hash(http, dev, app_settings, db_engine):
    to = new_recipient()
    run = await start_run(http, dev, f"pay 5 USDC to {to} for lunch")
    events = await sse_events(http, dev, run["id"])  # live: the stream closes at the terminal event

    assert types(events)[0] == "agent_started" and types(events)[-1] == "agent_completed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    executing = of_type(events, "tool_executing")
    assert [e["data"]["tool"] for e in executing] == ["pay"]
    assert executing[0]["data"]["arguments"] == {"to": to, "amount": "5", "asset": "USDC", "memo": "lunch"}
    completed = of_type(events, "tool_completed")[0]["data"]
    assert completed["ok"] is True and '"status": "confirmed"' in completed["result"]
    thinking = [e["data"] for e in of_type(events, "agent_thinking") if e["data"]["status"] == "answered"]
    assert {d["provider"] for d in thinking} == {"offline"}

    payment_id = agent_payment_id(run["id"], executing[0]["data"]["tool_call_id"])
    async with db_engine.connect() as conn:
        row = (await conn.execute(sa.select(payments).where(payments.c.id == uuid.UUID(payment_id)))).mappings().one()
    assert row["status"] == "confirmed" and row["workflow_id"] == f"payment-{payment_id}"
    assert row["idempotency_key"] == f"agent-run:{run['id']}:{executing[0]['data']['tool_call_id']}"
    answer = events[-1]["data"]["answer"]
    assert row["tx_hash"] in answer and "5 USDC" in answer
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 1
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 5_000_000

    final = await wait_run(http, dev, run["id"])
    assert final["status"] == "completed" and final["answer"] == answer and final["steps"] == 2


async def test_sse_replays_a_finished_run_and_resumes_after_last_event_id(http, dev):
    run = await start_run(http, dev, "balance")
    await wait_run(http, dev, run["id"])
    everything = await sse_events(http, dev, run["id"])
    assert types(everything) == [
        "agent_started",
        "agent_thinking",
        "agent_thinking",
        "tool_executing",
        "tool_completed",
        "agent_thinking",
        "agent_thinking",
        "agent_completed",
    ]
    assert "Your balance is" in everything[-1]["data"]["answer"]
    resumed = await sse_events(http, dev, run["id"], last_event_id="3")
    assert resumed == everything[3:]
    bad = await http.get(f"/v1/agent-runs/{run['id']}/events", headers={**auth(dev), "Last-Event-ID": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "Last-Event-ID"


async def test_memory_persists_across_runs_of_a_thread(http, dev):
    first = await start_run(http, dev, "remember favourite.colour = teal")
    assert (await wait_run(http, dev, first["id"]))["answer"] == "Remembered favourite.colour."
    second = await start_run(http, dev, "recall favourite.colour", thread_id=first["thread_id"])
    assert second["thread_id"] == first["thread_id"]
    assert (await wait_run(http, dev, second["id"]))["answer"] == "favourite.colour = teal"
    r = await http.get(f"/v1/threads/{first['thread_id']}/messages", headers=auth(dev))
    assert [m["role"] for m in r.json()["messages"]] == ["user", "assistant", "tool", "assistant"] * 2


async def test_bad_tool_arguments_are_reported_to_the_model_not_paid(http, dev):
    run = await start_run(http, dev, "pay 5 USDC to 0x0000000000000000000000000000000000000000")
    final = await wait_run(http, dev, run["id"])
    assert final["status"] == "completed"
    assert "pay failed" in final["answer"] and "zero address" in final["answer"]


async def test_bad_input_names_the_field(http, dev):
    cases = [
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({}, "message"),
        ({"message": "hi", "thread_id": "nope"}, "thread_id"),
        ({"message": "hi", "max_steps": 0}, "max_steps"),
        ({"message": "hi", "wallet_id": str(uuid.uuid4())}, "wallet_id"),
        ({"message": "hi", "x": 1}, "x"),
    ]
    for body, field in cases:
        r = await http.post("/v1/agent-runs", json=body, headers=auth(dev))
        assert r.status_code == 422 and r.json()["error"]["field"] == field, (body, r.text)
    r = await http.post("/v1/agent-runs", json={"message": "hi", "thread_id": str(uuid.uuid4())}, headers=auth(dev))
    assert r.status_code == 404 and r.json()["error"]["field"] == "thread_id"
    r = await http.post("/v1/agent-runs", json={"message": "hi"})
    assert r.status_code == 401


async def test_x402_fetch_pays_the_asked_price_once_and_returns_the_body(http, dev, paid_service, app_settings):
    url = f"{paid_service.url}/weather"
    run = await start_run(http, dev, f"fetch {url} paying up to 0.05 USDC")
    events = await sse_events(http, dev, run["id"])
    assert of_type(events, "tool_executing")[0]["data"]["tool"] == "x402_fetch"
    answer = events[-1]["data"]["answer"]
    assert events[-1]["type"] == "agent_completed" and answer.startswith(f"Fetched {url}, paid 0.01 USDC")
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 10_000
