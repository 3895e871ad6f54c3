"""Memory through the official MCP client: an agent's private scope, a shared scope only once granted (and not
after the grant is taken back), compare-and-set, patterns, and semantic recall."""

from __future__ import annotations

import uuid

from tests.api.helpers import auth
from tests.mcp.conftest import data, error_text, mcp_session


async def test_agents_share_memory_only_through_granted_scopes(api_url, agent, http, dev):
    scope = f"fleet/{uuid.uuid4().hex[:8]}"
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        tools = {t.name for t in (await mcp.list_tools()).tools}
        assert {"memorize", "recall_similar", "memory_put", "memory_get", "memory_search"} <= tools
        mine = data(await mcp.call_tool("memory_put", {"key": "todo/1", "value": {"status": "open"}}))
        assert mine["version"] == 1 and mine["scope"] == "private/default"
        refused = await mcp.call_tool("memory_put", {"key": "price", "value": 10, "scope": scope})
        assert "forbidden" in error_text(refused) and scope in error_text(refused)

        r = await http.put(
            "/v1/memory/grants", json={"scope": scope, "agent": agent["name"], "access": "write"}, headers=auth(dev)
        )
        assert r.status_code == 200, r.text
        first = data(await mcp.call_tool("memory_put", {"key": "price", "value": 10, "scope": scope, "if_version": 0}))
        stale = await mcp.call_tool("memory_put", {"key": "price", "value": 12, "scope": scope, "if_version": 0})
        assert "version conflict (current version 1)" in error_text(stale)
        got = data(await mcp.call_tool("memory_get", {"key": "price", "scope": scope}))
        assert (got["value"], got["version"]) == (10, first["version"])
        found = data(await mcp.call_tool("memory_search", {"pattern": "todo/*", "where": {"status": "open"}}))
        assert [i["key"] for i in found["items"]] == ["todo/1"]

        data(await mcp.call_tool("memorize", {"text": "Invoices from Acme are paid net 30", "scope": scope}))
        data(await mcp.call_tool("memorize", {"text": "The office plants need water on Mondays", "scope": scope}))
        near = data(await mcp.call_tool("recall_similar", {"query": "when do we pay Acme invoices", "scope": scope}))
        assert near["results"][0]["text"] == "Invoices from Acme are paid net 30"

        r = await http.put(
            "/v1/memory/grants", json={"scope": scope, "agent": agent["name"], "access": "none"}, headers=auth(dev)
        )
        assert r.status_code == 200
        revoked = await mcp.call_tool("memory_get", {"key": "price", "scope": scope})
        assert "forbidden" in error_text(revoked)
