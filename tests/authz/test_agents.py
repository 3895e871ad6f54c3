"""Agents as principals: their own key, wallets and budget; rotate and disable take effect at once; a person's
run can act as their agent; Idempotency-Keys belong to the principal that sent them."""

from __future__ import annotations

import asyncio
import uuid

import pytest_asyncio
import sqlalchemy as sa

from paygent.db.policies import save_policy
from paygent.db.reservations import reservations
from paygent.db.schema import audit_log, payments
from tests.agents.helpers import start_run, wait_run
from tests.agents.test_approvals import TWO_OF_THREE
from tests.api.helpers import auth, funded_wallet, new_recipient, payment_body, token_balance, transfers_to
from tests.authz.conftest import bearer

FINAL = ("confirmed", "failed", "cancelled", "refused")


async def make_agent(http, dev, wallet_ids: list[str], policy: dict | None = None) -> dict:
    name = f"agent-{uuid.uuid4().hex[:8]}"
    r = await http.post(
        "/v1/agents",
        headers=auth(dev),
        json={"name": name, "wallet_ids": wallet_ids, **({"spending_policy": policy} if policy else {})},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "name", "api_key"} and body["api_key"].startswith("pgk_")
    return body


async def pay(http, key: str, body: dict, idem: str | None = None):
    return await http.post(
        "/v1/payments", json=body, headers=bearer(key, **{"Idempotency-Key": idem or uuid.uuid4().hex})
    )


async def final(http, key: str, payment_id: str, timeout: float = 90) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await http.get(f"/v1/payments/{payment_id}", headers=bearer(key))
        assert r.status_code == 200, r.text
        if r.json()["status"] in FINAL:
            return r.json()
        assert asyncio.get_running_loop().time() < deadline, r.json()
        await asyncio.sleep(0.2)


@pytest_asyncio.fixture(scope="module")
async def roomy_wallet(http, dev, app_settings) -> dict:
    """A wallet whose own policy allows 1,000 USDC a day: the agent's 10 USDC budget is the tighter one."""
    wallet = await funded_wallet(http, dev, app_settings, 2_000)
    r = await http.put(
        f"/v1/wallets/{wallet['id']}/spending-policy",
        headers=auth(dev),
        json={"velocity": [{"name": "daily", "window_seconds": 86400, "max": "1000"}]},
    )
    assert r.status_code == 200, r.text
    return wallet


async def test_fifty_concurrent_payments_stop_at_the_agents_budget_and_the_chain_agrees(
    http, dev, roomy_wallet, app_settings, db_engine
):
    agent = await make_agent(
        http, dev, [roomy_wallet["id"]], {"velocity": [{"name": "daily", "window_seconds": 86400, "max": "10"}]}
    )
    to = new_recipient()
    body = {"wallet_id": roomy_wallet["id"], "to": to, "amount": "1", "asset": "USDC"}
    started = await asyncio.gather(*(pay(http, agent["api_key"], body) for _ in range(50)))
    assert [r.status_code for r in started] == [202] * 50, [r.text for r in started if r.status_code != 202]
    ends = await asyncio.gather(*(final(http, agent["api_key"], r.json()["id"]) for r in started))
    confirmed = [e for e in ends if e["status"] == "confirmed"]
    refused = [e for e in ends if e["status"] == "refused"]
    assert len(confirmed) == 10 and len(refused) == 40, sorted({e["status"] for e in ends})
    assert all(e["failure_reason"].startswith("agent:velocity:daily") for e in refused), refused[0]
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 10 * 10**6
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 10
    async with db_engine.connect() as conn:
        actors = set(
            await conn.scalars(
                sa.select(audit_log.c.actor).where(
                    audit_log.c.action == "payment.requested", audit_log.c.subject_id.in_([e["id"] for e in ends])
                )
            )
        )
        held = await conn.scalar(
            sa.select(sa.func.count()).where(
                reservations.c.agent_id == uuid.UUID(agent["id"]), reservations.c.status == "reserved"
            )
        )
    assert actors == {f"agent:{agent['name']} (owner alice)"}  # the agent, and the admin who owns it
    assert held == 0


async def test_an_agent_key_reaches_only_its_own_wallets_and_data(http, dev, roomy_wallet):
    agent = await make_agent(http, dev, [roomy_wallet["id"]])
    key = agent["api_key"]
    r = await pay(http, key, payment_body(dev, new_recipient(), "0.5"))  # treasury: not granted to it
    assert r.status_code == 403 and r.json()["error"]["field"] == "wallet_id", r.text
    run = await http.post(
        "/v1/agent-runs", json={"message": "health", "wallet_id": dev["wallets"]["treasury"]["id"]}, headers=bearer(key)
    )
    assert run.status_code == 403 and run.json()["error"]["field"] == "wallet_id", run.text
    alices = await http.post(
        "/v1/payments",
        json=payment_body(dev, new_recipient(), "0.01"),
        headers={**auth(dev), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert (await http.get(f"/v1/payments/{alices.json()['id']}", headers=bearer(key))).status_code == 404
    listed = (await http.get("/v1/wallets", headers=bearer(key))).json()["items"]
    assert [w["id"] for w in listed] == [roomy_wallet["id"]] and listed[0]["your_grants"] == ["spend"]
    for method, path, body in (
        ("POST", "/v1/webhooks", {"url": "https://example.com/h"}),
        ("POST", "/v1/agents", {"name": "sneaky"}),
        ("PUT", f"/v1/wallets/{roomy_wallet['id']}/grants", {"grants": []}),
        ("PUT", "/v1/approval-policy", {"tiers": []}),
        ("GET", "/v1/audit", None),
        ("POST", f"/v1/approvals/{alices.json()['id']}/approve", {"operation_hash": "0x" + "0" * 64}),
    ):
        r = await http.request(method, path, json=body, headers=bearer(key))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (path, r.text)
    mine = await pay(
        http, key, {"wallet_id": roomy_wallet["id"], "to": new_recipient(), "amount": "0.5", "asset": "USDC"}
    )
    assert mine.status_code == 202 and (await final(http, key, mine.json()["id"]))["status"] == "confirmed"


async def test_rotate_and_disable_take_effect_on_the_next_request(http, dev, roomy_wallet):
    agent = await make_agent(http, dev, [roomy_wallet["id"]])
    old = agent["api_key"]
    assert (await http.get("/v1/wallets", headers=bearer(old))).status_code == 200
    rotated = await http.post(f"/v1/agents/{agent['id']}/rotate-key", headers=auth(dev))
    assert rotated.status_code == 200 and rotated.json()["api_key"] != old
    assert (await http.get("/v1/wallets", headers=bearer(old))).status_code == 401
    new = rotated.json()["api_key"]
    assert (await http.get("/v1/wallets", headers=bearer(new))).status_code == 200
    disabled = await http.post(f"/v1/agents/{agent['id']}/disable", headers=auth(dev))
    assert disabled.status_code == 200, disabled.text
    assert (await http.get("/v1/wallets", headers=bearer(new))).status_code == 401
    tightened = await http.put(
        f"/v1/agents/{agent['id']}/spending-policy", headers=auth(dev), json={"per_payment_cap": "0.5"}
    )
    assert tightened.status_code == 200 and tightened.json()["spending_policy"]["per_payment_cap_atomic"] == 500_000
    shown = (await http.get(f"/v1/agents/{agent['id']}", headers=auth(dev, "erin"))).json()  # auditors read
    assert shown["disabled"] is True and shown["owner"] == "alice"


async def test_disabling_an_agent_cancels_its_run_waiting_for_approval_and_frees_the_budget(
    http, dev, app_settings, db_engine
):
    wallet = await funded_wallet(http, dev, app_settings, 1_000)
    async with db_engine.begin() as conn:  # above 100 USDC: 2 of bob/carol/dave
        await save_policy(conn, dev["tenant"]["id"], TWO_OF_THREE, actor="test", channel="api", wallet_id=wallet["id"])
    agent = await make_agent(http, dev, [wallet["id"]])
    to = new_recipient()
    # alice starts the run as her agent: its payments are the agent's
    run = await start_run(http, dev, f"pay 150 USDC to {to}", wallet_id=wallet["id"], agent_id=agent["id"])
    deadline = asyncio.get_running_loop().time() + 60
    while (await http.get(f"/v1/agent-runs/{run['id']}", headers=auth(dev))).json()["status"] != "awaiting_approval":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.2)
    async with db_engine.connect() as conn:
        payment = (await conn.execute(sa.select(payments).where(payments.c.to_address == to))).mappings().one()
    assert str(payment["requested_by"]) == agent["id"]
    r = await http.post(f"/v1/agents/{agent['id']}/disable", headers=auth(dev))
    assert r.status_code == 200 and r.json()["runs_cancelled"] == 1, r.text
    assert (await http.get("/v1/wallets", headers=bearer(agent["api_key"]))).status_code == 401
    ended = await wait_run(http, dev, run["id"])
    assert ended["status"] == "cancelled"
    async with db_engine.connect() as conn:
        status = await conn.scalar(sa.select(payments.c.status).where(payments.c.id == payment["id"]))
        held = await conn.scalar(sa.select(reservations.c.status).where(reservations.c.payment_id == payment["id"]))
    assert status == "cancelled" and held == "released"
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 0


async def test_an_idempotency_key_belongs_to_the_principal_that_sent_it(http, dev, principals):
    key = f"shared-{uuid.uuid4().hex[:6]}"
    alice = await pay(http, dev["users"]["alice"]["api_key"], payment_body(dev, new_recipient(), "0.01"), key)
    rita = await pay(http, principals["requester"]["key"], payment_body(dev, new_recipient(), "0.02"), key)
    assert alice.status_code == rita.status_code == 202
    assert alice.json()["id"] != rita.json()["id"]  # not a 409, not alice's payment: rita's own
    again = await pay(http, principals["requester"]["key"], payment_body(dev, new_recipient(), "0.02"), key)
    assert again.status_code == 409  # her own key reused for another body
