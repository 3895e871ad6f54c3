"""`user_message` continues a thread and `chat` is a turn without tools; several runs share one socket."""

from __future__ import annotations

from tests.api.helpers import auth, new_recipient
from tests.ws.helpers import connect, events_of, finished, send, start, until


async def test_a_thread_continues_with_user_message_and_chat_runs_no_tool(api_url, http, dev):
    async with connect(api_url, dev["users"]["alice"]["api_key"]) as ws:
        first = await start(ws, "remember ws-colour = teal")
        done = await until(ws, finished(first))
        thread_id = events_of(done, first)[0]["data"]["thread_id"]

        await send(ws, {"type": "user_message", "thread_id": thread_id, "message": "recall ws-colour", "ref": "2"})
        second = (await until(ws, lambda m: m.get("ref") == "2"))[-1]  # late messages of run 1 may come first
        assert second["type"] == "run_started" and second["thread_id"] == thread_id and second["ref"] == "2"
        await send(ws, {"type": "chat", "message": f"pay 5 USDC to {new_recipient()}", "ref": "3"})  # same socket
        early = await until(ws, lambda m: m.get("ref") == "3")  # the first run's events may come in between
        chat = early[-1]
        assert chat["type"] == "run_started" and chat["tools"] is False and chat["thread_id"] != thread_id
        pending = {second["run_id"], chat["run_id"]}

        def both_finished(msg: dict) -> bool:
            if msg["type"] == "run_finished":
                pending.discard(msg["run_id"])
            return not pending

        for msg in early:  # on a slow machine the first run may even have finished already
            both_finished(msg)
        seen = early + (await until(ws, both_finished) if pending else [])
    recalled, chatted = events_of(seen, second["run_id"]), events_of(seen, chat["run_id"])
    assert "teal" in recalled[-1]["data"]["answer"]
    assert chatted[0]["data"]["tools"] is False
    assert [e["type"] for e in chatted] == ["agent_started", "agent_thinking", "agent_thinking", "agent_completed"]
    assert "does not have it" in chatted[-1]["data"]["answer"]  # the model was offered no tools: nothing paid
    r = await http.get(f"/v1/threads/{thread_id}/messages", headers=auth(dev))
    assert r.status_code == 200 and "ws-colour" in r.text and "teal" in r.text  # one thread, both turns
