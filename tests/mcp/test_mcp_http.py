"""Paygent's MCP server through the official client over Streamable HTTP, against the real API, worker, chain.

An agent key pays within its limits (confirmed on chain), over a limit (a tool error naming it), above the
approval tier (the answer names the approvers; two approve over HTTP; wait_for_payment sees it confirmed),
fetches a paid URL with x402, and cannot reach another agent's or another tenant's payments or wallets.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from eth_account import Account

from paygent.db.schema import audit_log
from paygent.db.seed import seed_dev
from tests.api.helpers import auth, token_balance
from tests.approvals.helpers import approval, decide, until
from tests.mcp.conftest import data, error_text, mcp_session

TOOLS = {
    "get_balance",
    "get_spending_status",
    "pay",
    "x402_fetch",
    "get_payment",
    "list_payments",
    "wait_for_payment",
    "list_paid_services",
    "call_paid_tool",
    "remember",
    "recall",
    "cancel_payment",
    "preview_payment",
}  # what an agent key is shown (discover_services is for admins: tests/mcp/test_mcp_contract.py)


async def test_tools_are_listed_with_schemas_and_a_wrong_key_is_refused(api_url, agent, http):
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        templates = {t.uri_template for t in (await mcp.list_resource_templates()).resource_templates}
        balances = await mcp.call_tool("get_balance", {})
    assert TOOLS <= set(tools) and "discover_services" not in tools
    assert tools["pay"].input_schema["required"] == ["to", "amount"]
    assert "approval" in tools["pay"].description
    assert {"paygent://wallets/{wallet_id}", "paygent://policy/{subject}"} <= templates
    assert balances.structured_content["wallets"][0]["wallet_id"] == agent["wallet"]["id"]  # as README shows
    r = await http.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": "Bearer not-a-key", "Accept": "application/json, text/event-stream"},
    )
    assert r.status_code == 401 and r.json()["error"]["field"] == "Authorization"


async def test_pay_within_limits_over_a_limit_and_spending_status(api_url, agent, app_settings, db_engine):
    to = Account.create().address
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        paid = data(await mcp.call_tool("pay", {"to": to, "amount": "1.5", "request_id": "mcp-pay-1"}))
        final = data(await mcp.call_tool("wait_for_payment", {"payment_id": paid["id"], "timeout_seconds": 60}))
        again = data(await mcp.call_tool("pay", {"to": to, "amount": "1.5", "request_id": "mcp-pay-1"}))
        over = await mcp.call_tool("pay", {"to": to, "amount": "250"})
        status = data(await mcp.call_tool("get_spending_status", {}))
        balance = data(await mcp.call_tool("get_balance", {}))
        listed = data(await mcp.call_tool("list_payments", {"limit": 5}))
    assert final["status"] == "confirmed" and final["final"] and final["tx_hash"]
    assert again["id"] == paid["id"]  # the same request_id: the same payment, never a second one
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 1_500_000
    assert "refused" in error_text(over) and "agent:per_payment_cap" in error_text(over)
    daily = next(lim for lim in status["agent"]["limits"] if lim["limit"] == "velocity:daily")
    assert (daily["used"], daily["max"], daily["remaining"]) == ("1.5", "300", "298.5")
    assert balance["wallets"][0]["tokens"][0]["amount"] == "498.5"
    assert listed["items"][0]["status"] == "refused" and {i["id"] for i in listed["items"]} >= {paid["id"]}
    async with db_engine.connect() as conn:
        channels = set(
            (
                await conn.execute(
                    sa.select(audit_log.c.channel).where(
                        audit_log.c.subject_id == paid["id"], audit_log.c.action == "payment.requested"
                    )
                )
            ).scalars()
        )
    assert channels == {"mcp"}


async def test_pay_needing_approval_names_approvers_then_confirms(api_url, agent, http, dev, app_settings):
    to = Account.create().address
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        asked = data(await mcp.call_tool("pay", {"to": to, "amount": "150", "memo": "needs approval"}))
        assert asked["status"] == "awaiting_approval"
        assert asked["approval"]["approvals_needed"] == 2
        assert set(asked["approval"]["approvers"]) == {"bob", "carol", "dave"}
        view = await until(lambda: approval(http, dev, asked["id"]), lambda a: a is not None)
        for user in ("bob", "carol"):
            r = await decide(http, dev, user, asked["id"], "approve", {"operation_hash": view["operation_hash"]})
            assert r.status_code == 200, r.text
        progress: list[str] = []

        async def on_progress(done, total, message):
            progress.append(message)

        result = await mcp.call_tool(
            "wait_for_payment", {"payment_id": asked["id"], "timeout_seconds": 60}, progress_callback=on_progress
        )
    assert data(result)["status"] == "confirmed"
    assert progress and progress[-1].endswith("confirmed")
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 150_000_000


async def test_x402_fetch_pays_the_local_paid_service(api_url, agent, paid_service, app_settings):
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        fetched = data(
            await mcp.call_tool("x402_fetch", {"url": paid_service["url"] + "/weather", "max_amount": "0.05"})
        )
        capped = await mcp.call_tool("x402_fetch", {"url": paid_service["url"] + "/premium", "max_amount": "0.05"})
    assert fetched["status"] == "confirmed" and fetched["response_status"] == 200
    assert "sunny" in fetched["body"] and fetched["receipt"]["success"] is True
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service["pay_to"]) == 10_000
    assert "refused" in error_text(capped) and "exceeds the per-request cap of 0.05 USDC" in error_text(capped)


async def test_other_agents_and_tenants_ids_are_refused(api_url, agent, http, dev, app_settings):
    others = await http.post(
        "/v1/payments",
        headers={**auth(dev), "Idempotency-Key": uuid.uuid4().hex},
        json={
            "wallet_id": dev["wallets"]["treasury"]["id"],
            "to": Account.create().address,
            "amount": "0.01",
            "asset": "USDC",
        },
    )
    assert others.status_code == 202, others.text
    outsider = await seed_dev(
        app_settings.owner_database_url(),
        app_settings.master_key_bytes(),
        tenant_name=f"mcp-out-{uuid.uuid4().hex[:6]}",
    )
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        alices = await mcp.call_tool("get_payment", {"payment_id": others.json()["id"]})
        treasury = await mcp.call_tool(
            "pay", {"to": Account.create().address, "amount": "1", "wallet_id": dev["wallets"]["treasury"]["id"]}
        )
        foreign = await mcp.call_tool(
            "pay", {"to": Account.create().address, "amount": "1", "wallet_id": outsider["wallets"]["treasury"]["id"]}
        )
        listed = data(await mcp.call_tool("list_payments", {"limit": 100}))
    async with mcp_session(api_url, outsider["agents"]["shopper"]["api_key"]) as mcp:
        cross = await mcp.call_tool("get_payment", {"payment_id": others.json()["id"]})
        balances = data(await mcp.call_tool("get_balance", {}))
    assert "not_found" in error_text(alices) and "not_found" in error_text(cross)
    assert "forbidden" in error_text(treasury) and "no spend grant" in error_text(treasury)
    assert "wallet_id" in error_text(foreign) and "no such wallet" in error_text(foreign)
    assert others.json()["id"] not in {i["id"] for i in listed["items"]}
    assert [w["wallet_id"] for w in balances["wallets"]] == [outsider["wallets"]["treasury"]["id"]]


async def test_memory_is_the_callers_own(api_url, agent, dev):
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        assert data(await mcp.call_tool("remember", {"key": "city", "value": "Lisbon"}))["stored"]
        assert data(await mcp.call_tool("recall", {"key": "city"}))["value"] == "Lisbon"
    async with mcp_session(api_url, dev["agents"]["shopper"]["api_key"]) as mcp:
        assert data(await mcp.call_tool("recall", {"key": "city"}))["value"] is None


async def test_the_demos_mcp_step_pays_with_an_agent_key(api_url, agent, capsys):
    from paygent.cli.demo_mcp import mcp_payment

    dev_json = {"api_url": api_url, "token": {"symbol": "USDC"}, "agents": {"shopper": agent}}
    assert await mcp_payment(dev_json, amount="0.5") == "confirmed"
    assert "progress: payment" in capsys.readouterr().out
