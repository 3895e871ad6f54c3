"""A socket sees only its principal's runs: two people of one tenant, side by side, each see their own run's
events and nothing of the other's (not even by naming its id); roles apply as over HTTP."""

from __future__ import annotations

import asyncio

from tests.ws.helpers import connect, events_of, finished, recv, send, start, until


async def test_two_users_on_two_sockets_never_see_each_others_events(api_url, dev, other_requester):
    alice_key = dev["users"]["alice"]["api_key"]
    async with connect(api_url, alice_key) as a, connect(api_url, other_requester) as b:
        run_a, run_b = await asyncio.gather(start(a, "balance"), start(b, "recall nothing-here"))
        seen_a, seen_b = await asyncio.gather(until(a, finished(run_a)), until(b, finished(run_b)))
        assert {m["run_id"] for m in seen_a} == {run_a} and {m["run_id"] for m in seen_b} == {run_b}
        assert events_of(seen_a, run_a)[-1]["type"] == "agent_completed"
        assert events_of(seen_b, run_b)[-1]["type"] == "agent_completed"

        for ws, foreign in ((b, run_a), (a, run_b)):  # naming the other's run changes nothing
            await send(ws, {"type": "resume", "run_id": foreign, "last_seq": 0, "ref": "peek"})
            refused = await recv(ws)
            assert refused == {
                "type": "error",
                "ref": "peek",
                "code": "not_found",
                "field": "run_id",
                "message": "agent run not found",
                "run_id": foreign,
            }
            await send(ws, {"type": "cancel", "run_id": foreign})
            assert (await recv(ws))["code"] == "not_found"
            await send(ws, {"type": "ping"})
            assert (await recv(ws))["type"] == "pong"  # nothing of the other run arrived meanwhile


async def test_an_approver_may_not_start_runs_and_the_socket_stays_open(api_url, dev):
    async with connect(api_url, dev["users"]["bob"]["api_key"]) as ws:
        await send(ws, {"type": "start_agent", "message": "balance", "ref": "r1"})
        refused = await recv(ws)
        assert refused["type"] == "error" and refused["code"] == "forbidden" and refused["ref"] == "r1"
        assert "requester" in refused["message"]
        await send(ws, {"type": "ping", "ref": "still-there"})
        assert await recv(ws) == {"type": "pong", "ref": "still-there"}


async def test_an_agent_key_runs_as_the_agent(api_url, dev):
    async with connect(api_url, dev["agents"]["shopper"]["api_key"]) as ws:
        run_id = await start(ws, "balance")
        seen = await until(ws, finished(run_id))
        assert seen[-1]["status"] == "completed"
