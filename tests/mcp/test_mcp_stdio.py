"""`paygent mcp` (stdio) driven by the official client, as a desktop client would: a real subprocess bridging
to the API's /mcp with the key in PAYGENT_API_KEY. The same tools, limits and isolation as over HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from contextlib import asynccontextmanager

from eth_account import Account
from mcp import ClientSession, StdioServerParameters, stdio_client

from paygent.paths import REPO_ROOT
from tests.api.helpers import auth, token_balance
from tests.mcp.conftest import data, error_text
from tests.mcp.test_mcp_http import TOOLS


def _params(api_url: str, key: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "paygent.cli", "mcp"],
        cwd=str(REPO_ROOT),
        env={**os.environ, "PAYGENT_API_URL": api_url, "PAYGENT_API_KEY": key},
    )


@asynccontextmanager
async def stdio_session(api_url: str, key: str):
    async with stdio_client(_params(api_url, key)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def test_stdio_pays_within_limits_and_refuses_over_them(api_url, agent, app_settings, dev, http):
    to = Account.create().address
    alices = await http.post(
        "/v1/payments",
        headers={**auth(dev), "Idempotency-Key": uuid.uuid4().hex},
        json={
            "wallet_id": dev["wallets"]["treasury"]["id"],
            "to": Account.create().address,
            "amount": "0.01",
            "asset": "USDC",
        },
    )
    assert alices.status_code == 202, alices.text
    progress: list[str] = []

    async def on_progress(done, total, message):
        progress.append(message)

    async with stdio_session(api_url, agent["api_key"]) as mcp:
        assert TOOLS <= {t.name for t in (await mcp.list_tools()).tools}
        paid = data(await mcp.call_tool("pay", {"to": to, "amount": "2"}))
        final = data(
            await mcp.call_tool(
                "wait_for_payment", {"payment_id": paid["id"], "timeout_seconds": 60}, progress_callback=on_progress
            )
        )
        over = await mcp.call_tool("pay", {"to": to, "amount": "201"})
        own = await mcp.call_tool("get_payment", {"payment_id": paid["id"]})
        foreign = await mcp.call_tool("get_payment", {"payment_id": alices.json()["id"]})
        wallets = await mcp.read_resource("paygent://wallets/all")
    assert final["status"] == "confirmed" and progress and progress[-1].endswith("confirmed")
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 2_000_000
    assert "agent:per_payment_cap" in error_text(over)
    assert data(own)["id"] == paid["id"] and "not_found" in error_text(foreign)  # alice's is not the agent's
    assert agent["wallet"]["id"] in wallets.contents[0].text


async def test_stdio_with_a_bad_key_says_so_and_exits_2(api_url):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "paygent.cli",
        "mcp",
        cwd=str(REPO_ROOT),
        env={**os.environ, "PAYGENT_API_URL": api_url, "PAYGENT_API_KEY": "not-a-key"},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 2 and out == b""
    assert b"refused PAYGENT_API_KEY (HTTP 401" in err and b"not-a-key" not in err
