"""`memory_changed` over the WebSocket: a principal follows scopes it may read, sees only those changes, and
stops seeing a shared scope's changes once its grant is taken back."""

from __future__ import annotations

import asyncio
import json
import uuid

from tests.api.helpers import auth
from tests.ws.helpers import connect, recv, send, until


async def _put(http, key: str, scope: str, k: str, value) -> int:
    r = await http.put(
        "/v1/memory/items", json={"scope": scope, "key": k, "value": value}, headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 200, r.text
    return r.json()["version"]


async def _quiet(ws, seconds: float = 1.0) -> list[dict]:
    seen = []
    try:
        while True:
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), seconds)))
    except TimeoutError:
        return seen


async def test_memory_changes_reach_the_sockets_that_may_read_them(api_url, http, dev):
    bob, carol = dev["users"]["bob"]["api_key"], dev["users"]["carol"]["api_key"]
    agent = dev["agents"]["shopper"]["api_key"]
    private = f"private/ws{uuid.uuid4().hex[:8]}"
    shared = f"fleet/ws{uuid.uuid4().hex[:8]}"
    async with connect(api_url, bob) as bob_ws, connect(api_url, agent) as agent_ws:
        await send(
            bob_ws, {"type": "subscribe_memory", "scope": private, "ref": "s1"}
        )  # an approver: no requester role
        assert await recv(bob_ws) == {"type": "memory_subscribed", "ref": "s1", "scope": private}
        await send(agent_ws, {"type": "subscribe_memory", "scope": shared, "ref": "s2"})
        refused = await recv(agent_ws)
        assert (refused["type"], refused["code"], refused["field"]) == ("error", "forbidden", "scope")

        await _put(http, carol, private, "note", "carol's own")  # same scope name, carol's private rows
        version = await _put(http, bob, private, "note", "bob's")
        changed = (await until(bob_ws, lambda m: m["type"] == "memory_changed"))[-1]
        assert (changed["scope"], changed["key"], changed["op"], changed["version"]) == (
            private,
            "note",
            "put",
            version,
        )
        assert await _quiet(bob_ws) == []  # carol's write was not announced to bob

        grant = {"scope": shared, "agent": "shopper", "access": "read"}
        assert (await http.put("/v1/memory/grants", json=grant, headers=auth(dev))).status_code == 200
        await send(agent_ws, {"type": "subscribe_memory", "scope": shared, "ref": "s3"})
        assert (await recv(agent_ws))["type"] == "memory_subscribed"
        await _put(http, dev["users"]["alice"]["api_key"], shared, "price", 10)
        changed = (await until(agent_ws, lambda m: m["type"] == "memory_changed"))[-1]
        assert (changed["scope"], changed["key"]) == (shared, "price")

        grant["access"] = "none"
        assert (await http.put("/v1/memory/grants", json=grant, headers=auth(dev))).status_code == 200
        await _put(http, dev["users"]["alice"]["api_key"], shared, "price", 11)
        after = await _quiet(agent_ws, 2.0)
        assert [m["type"] for m in after] == ["error"] and after[0]["field"] == "scope"
