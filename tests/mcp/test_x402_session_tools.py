"""x402 sessions through the MCP tools, as an agent: the session counts against the agent's own budget."""

from __future__ import annotations

import json

from tests.api.helpers import token_balance
from tests.mcp.conftest import data, error_text, mcp_session

SESSION_TOOLS = {"x402_session_start", "x402_session_fetch", "x402_session_status", "x402_session_end"}


async def test_an_agent_session_pays_within_its_budget_and_ends(api_url, agent, paid_service, app_settings):
    url = paid_service["url"]
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        assert SESSION_TOOLS <= {t.name for t in (await mcp.list_tools()).tools}
        over = await mcp.call_tool(  # the agent may spend 300 a day: a 301 budget does not fit
            "x402_session_start",
            {"wallet_id": agent["wallet"]["id"], "budget": "301", "origins": [url], "ttl_seconds": 60},
        )
        session = data(
            await mcp.call_tool(
                "x402_session_start",
                {
                    "wallet_id": agent["wallet"]["id"],
                    "budget": "0.05",
                    "max_price": "0.01",
                    "origins": [url],
                    "ttl_seconds": 60,
                },
            )
        )
        fetched = data(
            await mcp.call_tool(
                "x402_session_fetch", {"session_id": session["id"], "url": f"{url}/weather", "request_id": "r-1"}
            )
        )
        capped = await mcp.call_tool("x402_session_fetch", {"session_id": session["id"], "url": f"{url}/premium"})
        seen = data(await mcp.call_tool("x402_session_status", {"session_id": session["id"]}))
        ended = data(await mcp.call_tool("x402_session_end", {"session_id": session["id"]}))
        late = await mcp.call_tool("x402_session_fetch", {"session_id": session["id"], "url": f"{url}/weather"})
    assert "limit_refused" in error_text(over) and "agent:velocity:daily" in error_text(over)
    assert session["status"] == "active"
    assert fetched["status_code"] == 200 and json.loads(fetched["body"])["forecast"] == "sunny"
    assert fetched["paid"]["amount"] == "0.01"
    assert "over_ceiling" in error_text(capped)
    assert seen["spent"] == "0.01" and [r["status"] for r in seen["requests"]] == ["confirmed"]
    assert ended["status"] == "closed" and ended["remaining"] == "0"
    assert "session_not_active" in error_text(late)
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service["pay_to"]) == 10_000
