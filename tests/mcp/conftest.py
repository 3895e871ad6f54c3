"""Fixtures for the MCP tests: an agent of its own (a fresh funded wallet, a budget, an approval tier), the real
paid service (HTTP x402 routes and paid MCP tools), and the official MCP client over Streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from contextlib import asynccontextmanager

import pytest_asyncio
import uvicorn
from eth_account import Account
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from paygent.chain.anvil import dev_account
from paygent.netutil import free_port
from paygent.x402.paid_service import create_paid_service
from tests.api.helpers import auth, funded_wallet
from tests.approvals.helpers import tiers
from tests.egress import exempt


@asynccontextmanager
async def mcp_session(api_url: str, key: str):
    """The official client, over Streamable HTTP, authenticated with a bearer API key."""
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    async with http, streamable_http_client(f"{api_url}/mcp", http_client=http) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def data(result) -> dict:
    """A tool result's JSON (structured content when present, else the text)."""
    assert not result.is_error, result.content
    return result.structured_content or json.loads(result.content[0].text)


def error_text(result) -> str:
    assert result.is_error, result
    return " ".join(getattr(c, "text", "") for c in result.content)


@pytest_asyncio.fixture(scope="module")
async def agent(http, dev, app_settings) -> dict:
    """A fresh agent of the dev tenant: its own wallet (500 USDC; above 100 needs 2 of bob, carol, dave), a
    budget of 200 a payment and 300 a day, and its key."""
    wallet = await funded_wallet(http, dev, app_settings, 500)
    r = await http.put(f"/v1/wallets/{wallet['id']}/approval-policy", json=tiers(), headers=auth(dev))
    assert r.status_code == 200, r.text
    r = await http.post(
        "/v1/agents",
        headers=auth(dev),
        json={
            "name": f"mcp-{uuid.uuid4().hex[:6]}",
            "wallet_ids": [wallet["id"]],
            "spending_policy": {
                "per_payment_cap": "200",
                "velocity": [{"name": "daily", "window_seconds": 86400, "max": "300"}],
            },
        },
    )
    assert r.status_code == 201, r.text
    return {**r.json(), "wallet": wallet}


@pytest_asyncio.fixture(scope="module")
async def paid_service(anvil_rpc, token_address, redis_url, app_settings):
    """The real paid service (x402 HTTP routes and paid MCP tools at /mcp), paying a fresh address, exempted
    from the egress policy (it listens on loopback) as an operator would exempt it."""
    pay_to = Account.from_key(os.urandom(32)).address
    app = create_paid_service(anvil_rpc, token_address, pay_to, dev_account(9).key.hex(), redis_url=redis_url)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    with exempt(app_settings, url):
        yield {"url": url, "pay_to": pay_to}
    server.should_exit = True
    await task
