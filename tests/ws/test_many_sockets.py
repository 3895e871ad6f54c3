"""50 sockets at once, a run each (offline planner): every run completes and every socket sees only its own."""

from __future__ import annotations

import asyncio

from tests.ws.helpers import connect, events_of, finished, start, until

SOCKETS = 50


async def test_fifty_sockets_with_a_run_each_all_complete(api_url, dev):
    key = dev["users"]["alice"]["api_key"]

    async def one(i: int) -> tuple[str, list[dict]]:
        async with connect(api_url, key) as ws:
            run_id = await start(ws, "list tools", timeout=100)  # one planner step: the load is the sockets
            return run_id, await until(ws, finished(run_id), timeout=140)

    results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(SOCKETS))), 150)  # generous: 2 shared cores
    assert len({run_id for run_id, _ in results}) == SOCKETS
    for run_id, seen in results:
        assert {m.get("run_id") for m in seen} == {run_id}
        events = events_of(seen, run_id)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["type"] == "agent_completed" and seen[-1]["status"] == "completed"
