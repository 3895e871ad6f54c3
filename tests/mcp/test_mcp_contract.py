"""What MCP clients expect of Paygent's server, through the official client: a 401 that says where to learn how
to authenticate (and that document), hints and closed output schemas on every tool (walked from tools/list),
only the tools a key may call, the caller's own resources, and the two tools that change nothing or undo:
`preview_payment` (a dry run: nothing reserved or written) and `cancel_payment` (before signing only)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from eth_account import Account

from paygent.db.reservations import reservations
from paygent.db.schema import audit_log, payments
from paygent.domain.payment import PaymentStatus
from tests.api.helpers import auth, wait_final
from tests.mcp.conftest import data, error_text, mcp_session

MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


async def test_a_refused_key_learns_where_to_read_how_to_authenticate(http, api_url):
    missing = await http.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS)
    wrong = await http.post("/mcp", json=LIST_TOOLS, headers={**MCP_HEADERS, "Authorization": "Bearer nope"})
    metadata_url = f"{api_url}/.well-known/oauth-protected-resource"
    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.headers["www-authenticate"] == f'Bearer realm="paygent", resource_metadata="{metadata_url}"'
    challenge = wrong.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="paygent", error="invalid_token", error_description="Authorization:')
    assert challenge.endswith(f'resource_metadata="{metadata_url}"')
    assert wrong.json()["error"]["field"] == "Authorization"  # Paygent's own message, unchanged
    for url in (metadata_url, metadata_url + "/mcp"):
        document = (await http.get(url)).json()
        assert document["resource"] == f"{api_url}/mcp" and document["bearer_methods_supported"] == ["header"]
        assert "Authorization: Bearer <api key>" in document["paygent_authentication"]["how"]
        assert "authorization_servers" not in document  # no OAuth flow for a client to start


def _objects(schema: dict, path: str = "$"):
    """Every object schema inside `schema` (properties, items, anyOf, $defs), with where it is."""
    if schema.get("type") == "object" or "properties" in schema:
        yield path, schema
    for key in ("properties", "$defs"):
        for name, sub in (schema.get(key) or {}).items():
            yield from _objects(sub, f"{path}.{name}")
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or []):
            yield from _objects(sub, f"{path}|{i}")
    if isinstance(schema.get("items"), dict):
        yield from _objects(schema["items"], f"{path}[]")


FREE_FORM = {"receipt", "metadata"}  # the facilitator's receipt, a memorized text's metadata: as they came


async def test_every_tool_carries_hints_and_a_closed_output_schema(api_url, dev):
    async with mcp_session(api_url, dev["users"]["alice"]["api_key"]) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
    assert {"discover_services", "cancel_payment", "preview_payment"} <= set(tools)  # alice is an admin
    for name, tool in tools.items():
        hints = tool.annotations
        assert hints is not None, name
        assert None not in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint), name
        assert hints.open_world_hint is not None, name
        assert tool.output_schema and tool.output_schema["properties"], f"{name}: no output schema"
        for where, obj in _objects(tool.output_schema):
            if where.rsplit(".", 1)[-1] in FREE_FORM or where.rsplit(".", 1)[-1].split("|")[0] in FREE_FORM:
                continue
            extra = obj.get("additionalProperties")
            typed_map = isinstance(extra, dict) and extra.get("type")  # e.g. headers: {name: string}
            assert typed_map or (extra is False and obj.get("properties")), f"{name} {where}: {obj}"
    read_only = {n for n, t in tools.items() if t.annotations.read_only_hint}
    assert read_only >= {"get_balance", "get_payment", "list_payments", "wait_for_payment", "preview_payment"}
    assert not read_only & {"pay", "x402_fetch", "call_paid_tool", "cancel_payment", "remember"}
    assert all(tools[n].annotations.destructive_hint for n in ("pay", "x402_fetch", "call_paid_tool", "cancel_payment"))
    assert not tools["pay"].annotations.idempotent_hint and tools["pay"].annotations.open_world_hint
    arguments = tools["list_payments"].input_schema
    assert arguments["properties"]["status"]["anyOf"] == [{"$ref": "#/$defs/PaymentStatus"}, {"type": "null"}]
    assert arguments["$defs"]["PaymentStatus"]["enum"] == [s.value for s in PaymentStatus]
    transport = tools["discover_services"].input_schema["properties"]["transport"]
    assert transport["enum"] == ["http", "mcp"]
    payment = tools["get_payment"].output_schema
    assert payment["properties"]["status"] == {"$ref": "#/$defs/PaymentStatus"}
    assert payment["$defs"]["PaymentStatus"]["enum"] == [s.value for s in PaymentStatus]


async def test_a_key_is_shown_only_the_tools_it_may_call(api_url, agent, paid_service, http, dev):
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        shown = {t.name for t in (await mcp.list_tools()).tools}
        hidden = await mcp.call_tool("discover_services", {"url": paid_service["url"] + "/weather"})
    assert "discover_services" not in shown and {"pay", "preview_payment", "cancel_payment"} <= shown
    assert error_text(hidden).startswith("forbidden: discover_services: agent keys may not do this")
    for user, tool, arguments in (  # without the requester role no tool is reached, the new ones included
        ("bob", "preview_payment", {"to": Account.create().address, "amount": "1"}),
        ("erin", "cancel_payment", {"payment_id": str(uuid.uuid4())}),
    ):
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
        r = await http.post("/mcp", json=call, headers={**MCP_HEADERS, **auth(dev, user)})
        assert r.status_code == 403 and "requester role" in r.json()["error"]["message"], r.text


async def test_resources_list_the_callers_wallets_and_policy(api_url, agent, dev):
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        listed = {str(r.uri): r for r in (await mcp.list_resources()).resources}
        wallet = await mcp.read_resource(f"paygent://wallets/{agent['wallet']['id']}")
        policy = await mcp.read_resource("paygent://policy/me")
    assert set(listed) == {"paygent://policy/me", "paygent://wallets/all", f"paygent://wallets/{agent['wallet']['id']}"}
    assert f"paygent://wallets/{dev['wallets']['treasury']['id']}" not in listed  # not the agent's
    assert listed["paygent://policy/me"].mime_type == "application/json"
    assert agent["wallet"]["address"] in (listed[f"paygent://wallets/{agent['wallet']['id']}"].description or "")
    assert agent["wallet"]["address"] in wallet.contents[0].text
    assert '"agent"' in policy.contents[0].text and '"per_payment_cap": "200"' in policy.contents[0].text


async def _written(db_engine, agent) -> tuple[int, int, int]:
    """Rows a payment would write: payments and reservations on the agent's wallet, audit rows by the agent."""
    wallet_id = agent["wallet"]["id"]
    async with db_engine.connect() as conn:
        return (
            await conn.scalar(sa.select(sa.func.count()).where(payments.c.wallet_id == wallet_id)),
            await conn.scalar(sa.select(sa.func.count()).where(reservations.c.wallet_id == wallet_id)),
            await conn.scalar(sa.select(sa.func.count()).where(audit_log.c.actor.like(f"%{agent['name']}%"))),
        )


async def test_preview_payment_reads_limits_and_tiers_and_writes_nothing(api_url, agent, dev, db_engine):
    to = Account.create().address
    before = await _written(db_engine, agent)
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        small = data(await mcp.call_tool("preview_payment", {"to": to, "amount": "50"}))
        large = data(await mcp.call_tool("preview_payment", {"to": to, "amount": "150"}))
        over = data(await mcp.call_tool("preview_payment", {"to": to, "amount": "250"}))
        no_grant = await mcp.call_tool(
            "preview_payment", {"to": to, "amount": "1", "wallet_id": dev["wallets"]["treasury"]["id"]}
        )
        bad = await mcp.call_tool("preview_payment", {"to": "0x12", "amount": "1"})
    assert await _written(db_engine, agent) == before  # nothing reserved, recorded or audited
    assert small["allowed"] and not small["needs_approval"] and small["tier"]["approvals_required"] == 0
    assert small["summary"] == f"50 USDC to {to} would be paid without approval"
    assert large["allowed"] and large["needs_approval"]
    assert (large["tier"]["approvals_required"], set(large["tier"]["approvers"])) == (2, {"bob", "carol", "dave"})
    assert large["summary"].startswith(f"150 USDC to {to} would wait for approval by 2 of ")
    assert not over["allowed"] and over["refusal"]["limit"] == "agent:per_payment_cap"
    assert over["refusal"]["message"] == "agent limit: 250 USDC exceeds the per-payment cap of 200 USDC"
    assert over["refusal"]["limit_atomic"] == "200000000" and over["amount_atomic"] == "250000000"
    assert "forbidden" in error_text(no_grant) and "no spend grant" in error_text(no_grant)
    assert "invalid_input" in error_text(bad) and "to" in error_text(bad)


async def test_cancel_payment_before_signing_only_and_only_ones_own(api_url, agent, dev, http):
    to = Account.create().address
    alices = await http.post(
        "/v1/payments",
        headers={**auth(dev), "Idempotency-Key": f"mcp-cancel-{to}"},
        json={"wallet_id": dev["wallets"]["treasury"]["id"], "to": to, "amount": "150", "asset": "USDC"},
    )
    assert alices.status_code == 202, alices.text
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        waiting = data(await mcp.call_tool("pay", {"to": to, "amount": "150", "request_id": f"cancel-{to}"}))
        assert waiting["status"] == "awaiting_approval"
        cancelled = data(await mcp.call_tool("cancel_payment", {"payment_id": waiting["id"], "reason": "changed mind"}))
        again = await mcp.call_tool("cancel_payment", {"payment_id": waiting["id"]})
        not_mine = await mcp.call_tool("cancel_payment", {"payment_id": alices.json()["id"]})
        paid = data(await mcp.call_tool("pay", {"to": to, "amount": "1"}))
        assert data(await mcp.call_tool("wait_for_payment", {"payment_id": paid["id"], "timeout_seconds": 60}))["final"]
        too_late = await mcp.call_tool("cancel_payment", {"payment_id": paid["id"]})
        status = data(await mcp.call_tool("get_spending_status", {}))
    assert cancelled == {"id": waiting["id"], "status": "cancelled", "failure_reason": cancelled["failure_reason"]}
    # the row or the workflow answers, whichever sees it first: either way not_cancellable, naming the state
    assert "not_cancellable" in error_text(again) and "cancelled" in error_text(again)
    assert "not_found" in error_text(not_mine)  # another principal's payment does not exist for an agent
    assert "not_cancellable" in error_text(too_late) and "confirmed" in error_text(too_late)
    assert all(limit["reserved"] == "0" for limit in status["agent"]["limits"])  # the reservation was released
    final = await wait_final(http, dev, waiting["id"])
    assert final["status"] == "cancelled"
    async with mcp_session(api_url, dev["users"]["alice"]["api_key"]) as mcp:  # an admin may cancel anyone's
        assert data(await mcp.call_tool("cancel_payment", {"payment_id": alices.json()["id"]}))["status"] == "cancelled"
