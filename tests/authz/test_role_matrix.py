"""Every door checks who you are: the app's routes are walked (a new route without a declared role fails here),
and every route is called as every kind of principal. A refusal is 403 `forbidden` and starts, signs and writes
nothing (rows, audit entries, workflows and blocks are counted around the refusals). Reads by id of another
principal's objects (every GET route with an id, every MCP tool taking a payment id, get_swap, every WebSocket
message naming a run or a thread) answer those who take no part in them exactly as an id that exists nowhere."""

from __future__ import annotations

import re
import time
import typing
import uuid
from datetime import UTC, datetime, timedelta

import pytest_asyncio
import sqlalchemy as sa

from api.app import create_app
from api.authz import PUBLIC_PATHS, markdown_table, route_table
from api.ws_messages import ClientMessage
from paygent.chain.rpc import async_web3
from paygent.db.accounts import create_user
from paygent.db.engine import get_engine
from paygent.db.tenancy import tenant_transaction
from paygent.paths import REPO_ROOT
from tests.agents.helpers import start_run, wait_run
from tests.api.helpers import auth, funded_wallet, new_recipient, payment_body
from tests.approvals.helpers import pay, tiers, wallet_with_policy
from tests.authz.conftest import bearer
from tests.egress import exempt
from tests.mcp.conftest import data, error_text, mcp_session
from tests.mcp.test_mcp_contract import MCP_HEADERS
from tests.ws.helpers import connect as ws_connect
from tests.ws.helpers import recv as ws_recv
from tests.ws.helpers import send as ws_send

PRINCIPALS = ("requester", "approver", "admin", "auditor", "nobody", "agent", "outsider")
ROLES_OF = {
    "requester": {"requester"},
    "approver": {"approver"},
    "admin": {"admin"},
    "auditor": {"auditor"},
    "nobody": set(),
    "outsider": {"requester", "admin"},
}
TABLES = (
    "payments",
    "memory_items",
    "memory_texts",
    "memory_grants",
    "agent_runs",
    "threads",
    "webhooks",
    "wallets",
    "users",
    "wallet_grants",
    "approval_policies",
    "spending_policies",
    "reservations",
    "agents",
)


def test_every_route_declares_who_may_call_it():
    undeclared = [(m, p) for m, p, roles in route_table(create_app()) if roles is None and p not in PUBLIC_PATHS]
    assert undeclared == [], f"routes without allow(...): {undeclared}"


def test_readme_shows_the_role_of_every_route():
    readme = (REPO_ROOT / "README.md").read_text()
    assert markdown_table(create_app()) in readme, "README.md's role table is stale: paste api.authz.markdown_table"


@pytest_asyncio.fixture(scope="module")
async def targets(http, dev, app_settings, principals) -> dict[str, str]:
    """Real ids for every path parameter, owned by the dev tenant (dedicated, so other tests never meet them)."""
    wallet = await funded_wallet(http, dev, app_settings, 10)
    r = await http.put(
        f"/v1/wallets/{wallet['id']}/grants",
        headers=auth(dev),
        json={
            "grants": [{"principal_id": principals["requester"]["id"]}, {"principal_id": dev["users"]["alice"]["id"]}]
        },
    )
    assert r.status_code == 200, r.text
    pay = await http.post(
        "/v1/payments",
        json=payment_body(dev, new_recipient(), "0.01"),
        headers={**auth(dev), "Idempotency-Key": uuid.uuid4().hex},
    )
    agent = await http.post("/v1/agents", json={"name": f"target-{uuid.uuid4().hex[:6]}"}, headers=auth(dev))
    with exempt(app_settings, app_settings.api_url):  # loopback: registered as an operator-exempted destination
        hook = await http.post("/v1/webhooks", json={"url": app_settings.api_url + "/hook"}, headers=auth(dev))
        session = await http.post(
            "/v1/x402/sessions",
            json={"wallet_id": wallet["id"], "budget": "0.01", "ttl_seconds": 600, "origins": [app_settings.api_url]},
            headers=auth(dev),
        )
    thread = await http.post("/v1/threads", json={"title": "matrix"}, headers=auth(dev))
    swap = await http.post(
        "/v1/swaps",
        json={"wallet_id": wallet["id"], "from_asset": "USDC", "to_asset": "EURC", "amount": "0.01"},
        headers={**auth(dev), "Idempotency-Key": uuid.uuid4().hex},
    )
    run = await start_run(http, dev, "health")
    await wait_run(http, dev, run["id"])
    for made in (pay, agent, hook, thread, session, swap):
        assert made.status_code in (201, 202), made.text
    return {
        "payment_id": pay.json()["id"],
        "wallet_id": wallet["id"],
        "agent_id": agent.json()["id"],
        "webhook_id": hook.json()["id"],
        "thread_id": thread.json()["id"],
        "run_id": run["id"],
        "session_id": session.json()["id"],
        "swap_id": swap.json()["id"],
        "approval_id": pay.json()["id"],
        "requester_id": principals["requester"]["id"],
        "alice_id": dev["users"]["alice"]["id"],
        "partition": "p1",
        "mismatch_id": "0",  # none has this id: an admin's resolve answers 404 (tests/reconcile/test_finality.py)
    }


def request_for(method: str, path: str, ids: dict[str, str], dev: dict) -> tuple[str, dict | None, dict]:
    """The URL, a body the route accepts in shape, and headers, for one route."""
    url = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)
    if path == "/v1/swaps/quote":
        url += f"?wallet_id={ids['wallet_id']}&from_asset=USDC&to_asset=EURC&amount=0.01"
    headers = {"Idempotency-Key": uuid.uuid4().hex} if method == "POST" else {}
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    zero_hash = "0x" + "0" * 64
    bodies = {
        ("POST", "/v1/payments"): payment_body(dev, new_recipient(), "0.01"),
        ("POST", "/v1/payments/{payment_id}/edit"): {"operation_hash": zero_hash, "amount": "1"},
        ("POST", "/v1/swaps"): {
            "wallet_id": ids["wallet_id"],
            "from_asset": "USDC",
            "to_asset": "EURC",
            "amount": "0.01",
        },
        ("POST", "/v1/agent-runs"): {"message": "health"},
        ("POST", "/v1/agents"): {"name": f"m-{uuid.uuid4().hex[:8]}"},
        ("PUT", "/v1/approval-policy"): {"tiers": "not a list"},  # an admin gets 422: the tenant's policy stays
        ("PUT", "/v1/wallets/{wallet_id}/approval-policy"): {"tiers": "not a list"},
        ("PUT", "/v1/wallets/{wallet_id}/grants"): {
            "grants": [{"principal_id": ids["requester_id"]}, {"principal_id": ids["alice_id"]}]
        },
        ("PUT", "/v1/wallets/{wallet_id}/spending-policy"): {},
        ("PUT", "/v1/agents/{agent_id}/spending-policy"): {"per_payment_cap": "1"},
        ("POST", "/v1/wallets"): {"name": f"m-{uuid.uuid4().hex[:8]}"},
        ("POST", "/v1/webhooks"): {"url": "https://hooks.example.com/paygent"},
        ("POST", "/v1/threads"): {"title": "t"},
        ("POST", "/v1/approvals/{approval_id}/approve"): {"operation_hash": zero_hash},
        ("POST", "/v1/approvals/{approval_id}/delegate"): {"delegate": "carol", "until": future},
        ("POST", "/v1/wallets/{wallet_id}/reconciliation/mismatches/{mismatch_id}/resolve"): {"reason": "matrix"},
    }
    return url, bodies.get((method, path), {} if method in ("POST", "PUT") else None), headers


async def call(http, method: str, url: str, body, headers: dict):
    if url.endswith("/events"):  # a stream: the status line is the answer
        async with http.stream(method, url, headers=headers) as r:
            return r.status_code, (await r.aread()) if r.status_code != 200 else b"{}"
    r = await http.request(method, url, json=body, headers=headers)
    return r.status_code, r.content


def role_refusal(error: dict) -> bool:
    """The one shape of a refusal for want of a role (other 403s are about this resource, e.g. not yours)."""
    return (
        error.get("code") == "forbidden"
        and error.get("field") is None
        and bool(re.match(r"^(this action needs the .+ role|agent keys may not do this.*)$", error.get("message", "")))
    )


def allowed(principal: str, roles: tuple[str, ...]) -> bool:
    if principal == "agent":
        return "agent" in roles
    return bool(ROLES_OF[principal] & set(roles))


async def counts(db_engine, temporal_env, app_settings, names: list[str], since: str) -> dict:

    async with db_engine.connect() as conn:
        out = {t: await conn.scalar(sa.text(f"SELECT count(*) FROM {t}")) for t in TABLES}
        out["audit by them"] = await conn.scalar(
            sa.text("SELECT count(*) FROM audit_log WHERE actor = ANY(:n) OR actor LIKE 'agent:shopper%'"), {"n": names}
        )
    out["workflows started"] = (await temporal_env.client.count_workflows(f"StartTime > '{since}'")).count
    out["block"] = await async_web3(app_settings.rpc_url).eth.block_number
    return out


async def test_every_route_as_every_principal(http, dev, principals, targets, db_engine, temporal_env, app_settings):
    routes = [(m, p, r) for m, p, r in route_table(create_app()) if p not in PUBLIC_PATHS]
    refusals, allowed_calls, failures = [], [], []
    for method, path, roles in routes:
        for who in PRINCIPALS:
            (allowed_calls if allowed(who, roles) else refusals).append((method, path, roles, who))

    names = [principals[p].get("name", "") for p in ("nobody",)] + ["bob", "erin"]
    since = datetime.now(UTC).isoformat()
    before = await counts(db_engine, temporal_env, app_settings, names, since)
    for method, path, _roles, who in refusals:
        url, body, headers = request_for(method, path, targets, dev)
        status, content = await call(http, method, url, body, {**headers, **bearer(principals[who]["key"])})
        error = _json(content).get("error", {})
        if not (status == 403 and role_refusal(error)):
            failures.append((method, path, who, status, content[:200]))
    time.sleep(1.0)  # anything a refusal had started would show by now
    after = await counts(db_engine, temporal_env, app_settings, names, since)
    assert after == before, "a refusal changed something"

    for method, path, _roles, who in allowed_calls:
        url, body, headers = request_for(method, path, targets, dev)
        status, content = await call(http, method, url, body, {**headers, **bearer(principals[who]["key"])})
        error = _json(content).get("error", {})
        if status == 401 or (status == 403 and role_refusal(error)) or status >= 500:
            failures.append((method, path, who, status, content[:200]))
        elif who == "outsider" and re.search(r"\{\w+_id\}", path) and status not in (404, 422):
            failures.append((method, path, who, status, content[:200]))  # another tenant's id must not exist
    tried = len(refusals) + len(allowed_calls)
    print(
        f"\nrole matrix: {len(routes)} routes x {len(PRINCIPALS)} principals = {tried} calls "
        f"({len(refusals)} refusals, {len(allowed_calls)} allowed), failures: {len(failures)}"
    )
    assert failures == [], failures
    assert tried == len(routes) * len(PRINCIPALS) and len(routes) >= 44


def _json(content: bytes) -> dict:
    import json

    try:
        value = json.loads(content)
        return value if isinstance(value, dict) else {}
    except ValueError:
        return {}


# Who may read alice's objects by id (the lists' rule): admins and auditors see the tenant's payments, approvals,
# wallets and agents; bob (the approver principal) is an approver of the payment's tier, so he sees that payment
# and its approval; nobody else, however many roles they hold, and runs and threads only their owner (alice).
SEES = {
    "payment_id": {"admin", "auditor", "approver"},
    "approval_id": {"admin", "auditor", "approver"},
    "wallet_id": {"admin", "auditor"},
    "agent_id": {"admin", "auditor"},
    "run_id": set(),
    "thread_id": set(),
    "session_id": {"admin", "auditor"},  # an x402 session: its owner, admins and auditors
    "swap_id": {"admin", "auditor"},  # a swap is a payment: its requester, admins and auditors
}


@pytest_asyncio.fixture(scope="module")
async def others(http, dev, app_settings, targets) -> dict[str, str]:
    """alice's objects, none of them granted or shown to the requester principal: a wallet only alice may
    spend from (above 100 USDC needs 2 of bob, carol, dave) and a 150 USDC payment from it awaiting approval."""
    wallet = await wallet_with_policy(http, dev, app_settings, tiers(), usdc=200)
    payment_id = await pay(http, dev, "150", wallet_id=wallet["id"])
    return {**targets, "wallet_id": wallet["id"], "payment_id": payment_id, "approval_id": payment_id}


async def test_reads_by_id_of_another_principals_objects(http, dev, principals, others):
    """Every GET route with an id, as every principal of the tenant allowed to call it, on alice's objects: 200
    for those who take part (SEES), else the very answer an id that exists nowhere gets."""
    reads = [(p, r) for m, p, r in route_table(create_app()) if m == "GET" and "{" in p]
    assert {n for p, _ in reads for n in re.findall(r"\{(\w+)\}", p)} <= set(SEES), "a new kind of id: add it to SEES"
    missing = {k: str(uuid.uuid4()) for k in SEES}
    seen, hidden, failures = 0, 0, []
    for path, roles in reads:
        param = re.findall(r"\{(\w+)\}", path)[0]
        for who in PRINCIPALS[:-1]:  # the outsider (another tenant) is the first test's
            if not allowed(who, roles):
                continue
            headers = bearer(principals[who]["key"])
            url, _, _ = request_for("GET", path, others, dev)
            status, content = await call(http, "GET", url, None, headers)
            if who in SEES[param]:
                seen += 1
                if status != 200:
                    failures.append((path, who, status, content[:200]))
                continue
            hidden += 1
            nowhere = request_for("GET", path, {**others, **missing}, dev)[0]
            expected = await call(http, "GET", nowhere, None, headers)
            if (status, _json(content)) != (404, _json(expected[1])) or expected[0] != 404:
                failures.append((path, who, status, content[:200], expected))
    print(f"\nreads by id of alice's objects: {len(reads)} routes, {seen} seen, {hidden} hidden, failures: {failures}")
    assert failures == [] and hidden >= 20 and seen >= 8


async def test_mcp_reads_by_id_of_another_principals_payment(api_url, principals, others, dev):
    """Every MCP tool that takes a payment id (found by walking the tool list), for the requester principal and
    an agent: alice's payment answers exactly as a payment id that exists nowhere; alice reads it (the tools that
    change it, such as cancel_payment, by their annotations, are only called by the others)."""
    async with mcp_session(api_url, dev["users"]["alice"]["api_key"]) as mcp:
        listed = [t for t in (await mcp.list_tools()).tools if "payment_id" in t.input_schema.get("properties", {})]
        tools = [t.name for t in listed if t.annotations and t.annotations.read_only_hint]
        changing = [t.name for t in listed if t.name not in tools]
        assert {"get_payment", "wait_for_payment"} <= set(tools) and "cancel_payment" in changing
        for tool in tools:
            mine = await mcp.call_tool(tool, {"payment_id": others["payment_id"], **_short(tool)})
            assert data(mine)["amount"] == "150", (tool, mine)
    for who in ("requester", "agent"):
        async with mcp_session(api_url, principals[who]["key"]) as mcp:
            for tool in tools + changing:
                extra = _short(tool)
                theirs = await mcp.call_tool(tool, {"payment_id": others["payment_id"], **extra})
                nowhere = await mcp.call_tool(tool, {"payment_id": str(uuid.uuid4()), **extra})
                assert error_text(theirs) == error_text(nowhere), (who, tool)
                assert error_text(theirs).endswith("not_found: payment not found"), (who, tool)


async def test_mcp_get_swap_answers_each_role_as_get_v1_swaps_does(
    http, api_url, dev, app_settings, principals, others
):
    """get_swap, walked over every principal of the tenant, alice, and a person holding requester and auditor, on
    alice's swap: whoever /mcp admits (the requester role or an agent key: as get_payment) gets what GET
    /v1/swaps/{id} gives them, the swap itself or the not_found of a swap id that exists nowhere; the other roles
    are refused at /mcp with the 403 every tool gets there (they read swaps at GET /v1/swaps/{id})."""
    swap_id, nowhere = others["swap_id"], str(uuid.uuid4())
    tenant = dev["tenant"]["id"]
    async with tenant_transaction(get_engine(app_settings.owner_database_url()), tenant) as conn:
        _, both = await create_user(conn, uuid.UUID(tenant), f"reqaud-{uuid.uuid4().hex[:6]}", ["requester", "auditor"])
    keys = {who: principals[who]["key"] for who in PRINCIPALS[:-1]}
    keys |= {"alice": dev["users"]["alice"]["api_key"], "requester+auditor": both}
    reads = {"alice", "admin", "auditor", "requester+auditor"}  # its requester, admins and auditors (SEES)
    admitted = {"alice", "requester", "agent", "requester+auditor"}  # /mcp: the requester role, agent keys
    params = {"name": "get_swap", "arguments": {"swap_id": swap_id}}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params}
    for who, key in keys.items():
        r = await http.get(f"/v1/swaps/{swap_id}", headers=bearer(key))
        assert r.status_code == (200 if who in reads else 403 if who == "nobody" else 404), (who, r.text)
        if who not in admitted:
            refused = await http.post("/mcp", json=call, headers={**MCP_HEADERS, **bearer(key)})
            error = _json(refused.content).get("error", {})
            assert refused.status_code == 403 and role_refusal(error), (who, refused.text)
            assert error["message"] == "this action needs the requester role", (who, error)
            continue
        async with mcp_session(api_url, key) as mcp:
            assert "get_swap" in {t.name for t in (await mcp.list_tools()).tools}, who
            got = await mcp.call_tool("get_swap", {"swap_id": swap_id})
            if who in reads:
                assert {k: data(got)[k] for k in ("id", "kind", "amount_in")} == {
                    k: r.json()[k] for k in ("id", "kind", "amount_in")
                }, who
                continue
            missing = await mcp.call_tool("get_swap", {"swap_id": nowhere})
            assert error_text(got) == error_text(missing) and error_text(got).endswith(
                "not_found: payment not found"
            ), who


def _short(tool: str) -> dict:
    return {"timeout_seconds": 1} if tool == "wait_for_payment" else {}


async def test_websocket_messages_naming_another_principals_run_or_thread(api_url, principals, others):
    """Every WebSocket message that names a run or a thread (found by walking the message models), sent by the
    requester principal and by an agent with alice's run and thread: the answer an id that exists nowhere gets."""
    models = typing.get_args(typing.get_args(ClientMessage)[0])
    naming = [m for m in models if {"run_id", "thread_id"} & set(m.model_fields)]
    assert {m.model_fields["type"].annotation.__args__[0] for m in naming} >= {"cancel", "resume", "user_message"}
    for who in ("requester", "agent"):
        async with ws_connect(api_url, principals[who]["key"]) as ws:
            for model in naming:
                kind = model.model_fields["type"].annotation.__args__[0]
                ids = [f for f in ("run_id", "thread_id") if f in model.model_fields]
                base = {"type": kind, "ref": kind, "message": "balance", "last_seq": 0}
                base = {k: v for k, v in base.items() if k in model.model_fields or k in ("type", "ref")}
                answers = []
                for values in ({f: others[f] for f in ids}, {f: str(uuid.uuid4()) for f in ids}):
                    await ws_send(ws, {**base, **values})
                    answers.append({k: v for k, v in (await ws_recv(ws)).items() if k not in ids})
                assert answers[0] == answers[1] and answers[0]["code"] == "not_found", (who, kind, answers)
