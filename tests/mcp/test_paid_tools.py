"""Paid MCP tools through Paygent, and discovery of x402 offers into the registry.

The local paid service serves priced MCP tools (the SDK's x402 MCP wrapper). An admin discovers them (and
HTTP resources) into the tenant's registry with price, asset, network and recipient; offers on another
network or in another asset are refused. An agent then calls a paid tool through Paygent's MCP server: it is
paid once through the exactly-once x402 path, its receipt stored, its limits applied; a retry after a dropped
answer returns the same payment and pays nothing more.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from mcp.shared.exceptions import MCPError

from paygent.db.schema import payments
from tests.agents.helpers import start_run, wait_run
from tests.api.helpers import auth, token_balance
from tests.mcp.conftest import data, error_text, mcp_session


async def test_discovery_registers_offers_and_refuses_other_networks_and_assets(
    http, dev, paid_service, api_url, app_settings, agent
):
    tools = await http.post(
        "/v1/paid-services/discover", headers=auth(dev), json={"url": paid_service["url"] + "/mcp", "transport": "mcp"}
    )
    assert tools.status_code == 200, tools.text
    found = {s["name"]: s for s in tools.json()["registered"]}
    assert set(found) == {"forecast", "premium_report"}
    assert found["forecast"]["price"] == "0.01" and found["forecast"]["transport"] == "mcp"
    assert found["forecast"]["network"] == "eip155:31337" and found["forecast"]["pay_to"] == paid_service["pay_to"]
    assert found["forecast"]["asset"].lower() == app_settings.token_address.lower()
    assert "Weather forecast" in found["forecast"]["description"]  # from the bazaar discovery extension

    weather = await http.post(
        "/v1/paid-services/discover", headers=auth(dev), json={"url": paid_service["url"] + "/weather"}
    )
    assert weather.status_code == 200 and weather.json()["registered"][0]["price"] == "0.01"
    assert weather.json()["registered"][0]["price_text"] == "0.01 USDC"  # the configured token, by its symbol
    cmd = [sys.executable, "-m", "paygent.cli", "services", "list", "--api-url", api_url]
    listed = await asyncio.to_thread(
        subprocess.run,
        [*cmd, "--api-key", dev["users"]["alice"]["api_key"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0 and "forecast: 0.01 USDC on eip155:31337 to " in listed.stdout, listed
    for path, rule in (
        ("/wrong-network", "network 'eip155:84532' is not allowed"),
        ("/unknown-asset", "is not an allowed asset"),
    ):
        r = await http.post("/v1/paid-services/discover", headers=auth(dev), json={"url": paid_service["url"] + path})
        assert r.status_code == 422 and rule in r.json()["error"]["message"], r.text
    agent_try = await http.post(
        "/v1/paid-services/discover",
        json={"url": paid_service["url"] + "/weather"},
        headers={"Authorization": f"Bearer {agent['api_key']}"},
    )
    assert agent_try.status_code == 403

    async with mcp_session(api_url, agent["api_key"]) as mcp:
        listed = {s["name"] for s in data(await mcp.call_tool("list_paid_services", {}))["services"]}
        refused = await mcp.call_tool("discover_services", {"url": paid_service["url"] + "/mcp", "transport": "mcp"})
    assert {"forecast", "premium_report"} <= listed
    assert "forbidden" in error_text(refused) and "admin" in error_text(refused)


async def test_a_paid_tool_is_paid_once_and_its_receipt_stored(
    api_url, agent, paid_service, app_settings, db_engine, http, dev
):
    await http.post(
        "/v1/paid-services/discover", headers=auth(dev), json={"url": paid_service["url"] + "/mcp", "transport": "mcp"}
    )
    before = await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service["pay_to"])
    args = {"service": "forecast", "arguments": {"city": "Porto"}, "max_amount": "0.05", "request_id": "forecast-1"}
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        with pytest.raises(MCPError):  # the caller's answer is dropped (it gave up waiting); the payment goes on
            await mcp.call_tool("call_paid_tool", args, read_timeout_seconds=0.05)
        first = data(await mcp.call_tool("call_paid_tool", args))
        again = data(await mcp.call_tool("call_paid_tool", args))
    assert first["status"] == "confirmed" and "Porto" in first["body"] and first["receipt"]["success"] is True
    assert again["payment_id"] == first["payment_id"]
    after = await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service["pay_to"])
    assert after - before == 10_000  # paid once, whatever the retries
    async with db_engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(payments.c.id, payments.c.details, payments.c.amount_atomic).where(
                    payments.c.idempotency_key == "forecast-1"
                )
            )
        ).all()
    assert len(rows) == 1 and int(rows[0].amount_atomic) == 10_000
    stored = rows[0].details
    assert stored["mcp"] == {"tool": "forecast", "arguments": {"city": "Porto"}}
    assert stored["receipt"]["transaction"] == first["receipt"]["transaction"] and stored["outcome"] == "paid"
    assert "signed" in stored and "signed" not in str(first)  # the authorization never leaves Paygent


async def test_a_paid_tool_meets_the_agents_limits(api_url, http, dev, app_settings, paid_service):
    await http.post(
        "/v1/paid-services/discover", headers=auth(dev), json={"url": paid_service["url"] + "/mcp", "transport": "mcp"}
    )
    r = await http.post(
        "/v1/agents",
        headers=auth(dev),
        json={
            "name": f"frugal-{uuid.uuid4().hex[:6]}",
            "wallet_ids": [dev["wallets"]["treasury"]["id"]],
            "spending_policy": {"per_payment_cap": "1"},
        },
    )
    assert r.status_code == 201, r.text
    before = await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service["pay_to"])
    async with mcp_session(api_url, r.json()["api_key"]) as mcp:
        refused = await mcp.call_tool("call_paid_tool", {"service": "premium_report", "max_amount": "5"})
        unknown = await mcp.call_tool("call_paid_tool", {"service": "nope", "max_amount": "5"})
    assert "refused" in error_text(refused) and "agent:per_payment_cap" in error_text(refused)
    assert "no paid MCP tool named 'nope'" in error_text(unknown)
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service["pay_to"]) == before


async def test_an_agent_run_calls_a_paid_tool(http, dev, paid_service, app_settings):
    await http.post(
        "/v1/paid-services/discover", headers=auth(dev), json={"url": paid_service["url"] + "/mcp", "transport": "mcp"}
    )
    before = await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service["pay_to"])
    run = await start_run(http, dev, "call forecast city=Faro paying up to 0.05 USDC")
    assert (await wait_run(http, dev, run["id"]))["status"] == "completed"
    listed = (await http.get("/v1/payments", params={"limit": 5}, headers=auth(dev))).json()["items"]
    paid = next(
        p
        for p in listed
        if (p.get("x402") or {}).get("mcp_tool") == "forecast" and "Faro" in (p["x402"]["response_body_excerpt"] or "")
    )
    assert paid["status"] == "confirmed" and paid["x402"]["receipt"]["success"] is True
    after = await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service["pay_to"])
    assert after - before == 10_000
