"""The other doors: `paygent swap 10 USDC EURC --slippage-bps 30` as a person runs it, and the MCP tools
quote_swap / swap / get_swap (hints, closed output schemas, the same roles and refusals as HTTP)."""

from __future__ import annotations

from paygent.cli.demo_swap import SLIPPAGE_BPS, swap_and_watch
from tests.api.helpers import auth
from tests.api.test_payments_cli import home, paygent  # noqa: F401  (pytest fixture)
from tests.mcp.conftest import data, error_text, mcp_session
from tests.mcp.test_mcp_contract import MCP_HEADERS
from tests.swaps import helpers as h


async def test_the_cli_prints_the_quote_the_minimum_and_the_real_output(home):  # noqa: F811
    code, out = await paygent(home, "swap", "10", "USDC", "EURC", "--slippage-bps", "30", "--as", "alice")
    assert code == 0, out
    assert "quote: Swap 10 USDC -> >= " in out and "via Uniswap V2" in out, out
    assert "minimum " in out and "(30 bps), price impact " in out, out
    [line] = [x for x in out.splitlines() if ": confirmed: " in x]
    assert "10 USDC -> " in line and " EURC (minimum " in line and "gas " in line and "tx 0x" in line, line
    code, out = await paygent(home, "swap", "10", "USDC", "USDC", "--as", "alice")
    assert code == 1 and "HTTP 422" in out and "to_asset" in out, out


async def test_mcp_quote_and_swap(api_url, dev, http):
    async with mcp_session(api_url, dev["users"]["alice"]["api_key"]) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert tools["quote_swap"].annotations.read_only_hint and tools["get_swap"].annotations.read_only_hint
        assert tools["swap"].annotations.destructive_hint and not tools["swap"].annotations.read_only_hint
        for name in ("quote_swap", "swap", "get_swap"):
            assert tools[name].output_schema["additionalProperties"] is False
        args = {"wallet_id": dev["wallets"]["treasury"]["id"], "from_asset": "USDC", "to_asset": "EURC", "amount": "3"}
        q = data(await mcp.call_tool("quote_swap", args))
        assert q["route"] == ["USDC", "EURC"] and int(q["min_amount_out_atomic"]) < int(q["amount_out_atomic"])
        started = data(await mcp.call_tool("swap", {**args, "slippage_bps": 40, "request_id": "mcp-swap-1"}))
        assert started["kind"] == "swap" and started["quote"]["slippage_bps"] == 40
        view = await h.wait_swap(http, dev, started["id"])
        assert view["status"] == "confirmed", view
        got = data(await mcp.call_tool("get_swap", {"swap_id": started["id"]}))
        assert got["amount_out_atomic"] == view["amount_out_atomic"]
        refused = error_text(await mcp.call_tool("quote_swap", {**args, "to_asset": "USDC"}))
        assert "to_asset" in refused, refused
    # an approver-only key reaches no tool at /mcp (the route needs the requester role): 403, nothing starts
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "swap", "arguments": args}}
    r = await http.post("/mcp", json=call, headers={**MCP_HEADERS, **auth(dev, "bob")})
    assert r.status_code == 403 and "requester role" in r.json()["error"]["message"], r.text


async def test_the_demos_swap_step_prints_the_minimum_the_swap_enforced(
    http, dev, swap_dev, token_address, anvil_rpc, capsys
):
    # the demo quoted at the default 50 bps and swapped at 30: the minimum it printed was not the swap's
    dev_json = {**dev, "token": {"address": token_address}, "swap": swap_dev}
    view = await swap_and_watch(http, dev_json, h.w3(anvil_rpc))
    [quoted] = [x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("quote:")]
    assert view["status"] == "confirmed" and view["slippage_bps"] == SLIPPAGE_BPS, view
    assert f"minimum {view['min_amount_out']} at {SLIPPAGE_BPS} bps" in quoted, (quoted, view)
