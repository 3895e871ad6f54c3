"""The demo's MCP step: an MCP client (the official SDK, Streamable HTTP) pays through Paygent with the
`shopper` agent's own key, and waits for the payment with progress notifications."""

from __future__ import annotations

import httpx2
from eth_account import Account
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent


async def mcp_payment(dev: dict, *, amount: str = "1") -> str:
    """Returns the payment's final status (a refusal by the agent's daily budget is shown, not raised)."""
    key = dev["agents"]["shopper"]["api_key"]
    to = Account.create().address
    print(
        f"\n==> an MCP client pays {amount} {dev['token']['symbol']} to {to} with the agent `shopper`'s key "
        f"({dev['api_url']}/mcp, tools `pay` then `wait_for_payment`)"
    )

    async def show_progress(progress: float, total: float | None, message: str | None) -> None:
        print(f"    progress: {message}")

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30, read=120))
    async with http, streamable_http_client(dev["api_url"] + "/mcp", http_client=http) as (read, write):
        async with ClientSession(read, write) as mcp:
            await mcp.initialize()
            paid = await mcp.call_tool("pay", {"to": to, "amount": amount, "memo": "demo: paid over MCP"})
            if paid.is_error:
                print(f"    refused: {' '.join(c.text for c in paid.content if isinstance(c, TextContent))}")
                return "refused"
            payment = paid.structured_content
            print(f"    payment {payment['id']}: {payment['status']}")
            done = await mcp.call_tool(
                "wait_for_payment",
                {"payment_id": payment["id"], "timeout_seconds": 60},
                progress_callback=show_progress,
            )
    final = done.structured_content
    print(f"    {final['status']}: tx {final['tx_hash']} (audit channel `mcp`)")
    return final["status"]
