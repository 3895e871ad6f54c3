"""Wallets through the API, and spending limits enforced before anything is signed."""

from __future__ import annotations

import asyncio

from tests.api.helpers import auth, create, funded_wallet, new_recipient, token_balance, transfers_to, wait_final


async def _funded_wallet(http, dev, app_settings, usdc: int) -> dict:
    wallet = await funded_wallet(http, dev, app_settings, usdc)
    assert set(wallet) == {"id", "name", "address"}  # never a key
    return wallet


async def test_wallet_balance_and_admin_only_creation(http, dev, app_settings):
    wallet = await _funded_wallet(http, dev, app_settings, 70)
    hidden = await http.get(f"/v1/wallets/{wallet['id']}/balance", headers=auth(dev, "bob"))
    assert hidden.status_code == 404  # bob holds no grant on it: to him it does not exist
    r = await http.get(f"/v1/wallets/{wallet['id']}/balance", headers=auth(dev, "erin"))  # auditors see all
    assert r.status_code == 200
    body = r.json()
    assert body["native"]["amount"] == "1" and body["tokens"][0]["amount"] == "70"
    denied = await http.post("/v1/wallets", json={"name": "bobs"}, headers=auth(dev, "bob"))
    assert denied.status_code == 403
    assert denied.json()["error"] == {"code": "forbidden", "field": None, "message": "this action needs the admin role"}


async def test_two_hundred_concurrent_payments_never_exceed_the_daily_limit(http, dev, app_settings):
    wallet = await _funded_wallet(http, dev, app_settings, 100)
    r = await http.put(
        f"/v1/wallets/{wallet['id']}/spending-policy",
        headers=auth(dev),
        json={"per_payment_cap": "5", "velocity": [{"name": "daily", "window_seconds": 86400, "max": "30"}]},
    )
    assert r.status_code == 200, r.text
    to = new_recipient()
    gate = asyncio.Semaphore(40)

    async def pay():
        async with gate:
            body = {"wallet_id": wallet["id"], "to": to, "amount": "1", "asset": "USDC"}
            r = await create(http, dev, body)
            assert r.status_code == 202, r.text
            return r.json()["id"]

    ids = await asyncio.gather(*(pay() for _ in range(200)))
    finals = await asyncio.gather(*(wait_final(http, dev, i, timeout=240) for i in ids))
    confirmed = [f for f in finals if f["status"] == "confirmed"]
    refused = [f for f in finals if f["status"] == "refused"]
    assert len(confirmed) == 30 and len(refused) == 170
    assert all(f["failure_reason"].startswith("velocity:daily") for f in refused)
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 30 * 10**6
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 30


async def test_cap_and_denylist_refuse_with_the_limit_named(http, dev, app_settings):
    wallet = await _funded_wallet(http, dev, app_settings, 50)
    blocked = new_recipient()
    r = await http.put(
        f"/v1/wallets/{wallet['id']}/spending-policy",
        headers=auth(dev),
        json={"per_payment_cap": "10", "denylist": [blocked]},
    )
    assert r.status_code == 200
    over = await create(
        http, dev, {"wallet_id": wallet["id"], "to": new_recipient(), "amount": "10.000001", "asset": "USDC"}
    )
    denied = await create(http, dev, {"wallet_id": wallet["id"], "to": blocked, "amount": "1", "asset": "USDC"})
    ok = await create(http, dev, {"wallet_id": wallet["id"], "to": new_recipient(), "amount": "10", "asset": "USDC"})
    assert (await wait_final(http, dev, over.json()["id"]))["failure_reason"].startswith("per_payment_cap")
    assert (await wait_final(http, dev, denied.json()["id"]))["failure_reason"].startswith("denylist")
    assert (await wait_final(http, dev, ok.json()["id"]))["status"] == "confirmed"
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, blocked) == 0


async def test_policy_input_errors_name_the_field(http, dev, app_settings):
    wallet_id = dev["wallets"]["treasury"]["id"]
    r = await http.put(
        f"/v1/wallets/{wallet_id}/spending-policy",
        headers=auth(dev),
        json={"velocity": [{"name": "daily", "window_seconds": 86400, "max": "-3"}]},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "velocity[0].max"
    r = await http.put(f"/v1/wallets/{wallet_id}/spending-policy", headers=auth(dev), json={"allowlist": ["0x12"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "allowlist"
    r = await http.put(f"/v1/wallets/{wallet_id}/spending-policy", headers=auth(dev, "bob"), json={})
    assert r.status_code == 403
