"""Swaps are governed like payments: 50 concurrent swaps against a daily limit never overspend (on chain either);
an agent swaps only from wallets it is granted, within its own budget."""

from __future__ import annotations

import asyncio

from tests.api.helpers import auth, funded_wallet
from tests.authz.conftest import bearer
from tests.authz.test_agents import make_agent
from tests.swaps import helpers as h


async def test_fifty_concurrent_swaps_stop_at_the_daily_limit(
    http, dev, app_settings, anvil_rpc, token_address, eurc_address, db_engine
):
    wallet = await funded_wallet(http, dev, app_settings, 200)
    r = await http.put(
        f"/v1/wallets/{wallet['id']}/spending-policy",
        headers=auth(dev),
        json={"velocity": [{"name": "daily", "window_seconds": 86400, "max": "30"}]},
    )
    assert r.status_code == 200, r.text
    body = {**h.body(dev, "2"), "wallet_id": wallet["id"]}
    started = await asyncio.gather(*(h.swap(http, dev, body) for _ in range(50)))
    assert [s.status_code for s in started] == [202] * 50, [s.text for s in started if s.status_code != 202]
    ends = await asyncio.gather(*(h.wait_swap(http, dev, s.json()["id"], timeout=300) for s in started))
    confirmed = [e for e in ends if e["status"] == "confirmed"]
    refused = [e for e in ends if e["status"] == "refused"]
    assert len(confirmed) == 15 and len(refused) == 35, sorted(e["status"] + str(e["failure_reason"]) for e in ends)
    assert all(e["failure_reason"].startswith("velocity:daily") for e in refused), refused[0]
    usdc, eurc = await h.balances(anvil_rpc, token_address, eurc_address, wallet["address"])
    assert usdc == 170 * 10**6  # 15 x 2 USDC, never more
    assert (
        eurc
        == sum(int(e["amount_out_atomic"]) for e in confirmed)
        == await h.ledger_sum(db_engine, wallet["id"], "EURC")
    )
    assert await h.allowance(anvil_rpc, token_address, wallet["address"], app_settings.swap_router_address) == 0


async def test_an_agent_swaps_only_from_granted_wallets_within_its_budget(
    http, dev, app_settings, anvil_rpc, token_address, eurc_address
):
    granted = await funded_wallet(http, dev, app_settings, 100)
    agent = await make_agent(
        http, dev, [granted["id"]], {"velocity": [{"name": "daily", "window_seconds": 86400, "max": "5"}]}
    )
    key = bearer(agent["api_key"])
    # not granted: treasury (alice's) is refused at the door for a quote and a swap, nothing starts
    q = await http.get("/v1/swaps/quote", params=h.body(dev), headers=key)
    assert q.status_code == 403 and q.json()["error"]["field"] == "wallet_id", q.text
    r = await http.post("/v1/swaps", json=h.body(dev), headers={**key, "Idempotency-Key": "agent-swap-1"})
    assert r.status_code == 403 and r.json()["error"]["field"] == "wallet_id", r.text
    # granted: within the budget it swaps; past it, refused by the agent's own limit
    ok = await http.post(
        "/v1/swaps", json={**h.body(dev, "4"), "wallet_id": granted["id"]}, headers={**key, "Idempotency-Key": "a2"}
    )
    over = await http.post(
        "/v1/swaps", json={**h.body(dev, "4"), "wallet_id": granted["id"]}, headers={**key, "Idempotency-Key": "a3"}
    )
    assert ok.status_code == over.status_code == 202, (ok.text, over.text)
    first = await h.wait_swap(http, dev, ok.json()["id"])
    second = await h.wait_swap(http, dev, over.json()["id"])
    assert sorted([first["status"], second["status"]]) == ["confirmed", "refused"], (first, second)
    refused = first if first["status"] == "refused" else second
    assert refused["failure_reason"].startswith("agent:velocity:daily"), refused
    usdc, _ = await h.balances(anvil_rpc, token_address, eurc_address, granted["address"])
    assert usdc == 96 * 10**6
