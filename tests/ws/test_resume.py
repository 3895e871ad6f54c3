"""A dropped socket loses nothing: `resume` with the last sequence number replays the rest from Postgres and
continues live, and no event arrives twice."""

from __future__ import annotations

from tests.agents.helpers import sse_events
from tests.api.helpers import new_recipient
from tests.ws.helpers import connect, events_of, finished, recv, send, start, until


async def test_resume_after_a_dropped_socket_loses_and_duplicates_nothing(api_url, http, dev):
    key = dev["users"]["alice"]["api_key"]
    async with connect(api_url, key) as first:
        run_id = await start(first, f"pay 1 USDC to {new_recipient()} for the resume test")
        before = events_of(await until(first, lambda m: m.get("seq") == 3), run_id)
    # the socket is gone; the run goes on
    async with connect(api_url, key) as second:
        await send(second, {"type": "resume", "run_id": run_id, "last_seq": before[-1]["seq"], "ref": "again"})
        resuming = await recv(second)
        assert resuming["type"] == "resuming" and resuming["after_seq"] == 3 and resuming["ref"] == "again"
        rest = await until(second, finished(run_id))
    after = events_of(rest, run_id)
    seqs = [e["seq"] for e in before + after]
    assert seqs == list(range(1, len(seqs) + 1))  # in order, no gap, no repeat
    assert rest[-1] == {"type": "run_finished", "run_id": run_id, "status": "completed", "last_seq": seqs[-1]}
    recorded = await sse_events(http, dev, run_id)  # what Postgres holds, read over SSE
    assert [(e["seq"], e["type"], e["data"]) for e in recorded] == [
        (e["seq"], e["type"], e["data"]) for e in before + after
    ]
    assert "tool_completed" in [e["type"] for e in after] and after[-1]["type"] == "agent_completed"
