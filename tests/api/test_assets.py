"""More than one asset (issue 21): USDC and EURC in the asset registry (paygent/assets.py). An EURC payment settles
on chain in EURC and books EURC; a spending limit is for one asset; an unknown asset is refused naming `asset`
before anything starts; a wallet's balance lists every registered asset. Everything real: the API, the payment
workflow on the session's worker, anvil."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from paygent.db.schema import ledger_entries
from tests.api.helpers import auth, create, eurc_address, funded_wallet, new_recipient, token_balance, wait_final
from tests.api.test_payment_validation import nothing_started  # noqa: F401 (a fixture)


def _pay(wallet: dict, asset: str, amount: str, to: str | None = None) -> dict:
    return {"wallet_id": wallet["id"], "to": to or new_recipient(), "amount": amount, "asset": asset}


async def _ledger(db_engine, payment_id: str) -> list[tuple[str, str, int]]:
    async with db_engine.connect() as conn:
        rows = await conn.execute(
            sa.select(ledger_entries.c.account, ledger_entries.c.asset, ledger_entries.c.amount_atomic)
            .where(ledger_entries.c.payment_id == uuid.UUID(payment_id))
            .order_by(ledger_entries.c.id)
        )
        return [(r.account, r.asset, int(r.amount_atomic)) for r in rows]


async def test_an_eurc_payment_settles_on_chain_in_eurc_and_books_eurc(http, dev, db_engine, app_settings):
    wallet = await funded_wallet(http, dev, app_settings, 5, eurc=20)
    eurc, usdc, rpc = eurc_address(app_settings), app_settings.token_address, app_settings.rpc_url
    to = new_recipient()
    r = await create(http, dev, _pay(wallet, "eurc", "2.5", to))  # any case names the asset
    assert r.status_code == 202, r.text
    paid = await wait_final(http, dev, r.json()["id"])
    assert paid["status"] == "confirmed", paid
    assert (paid["asset"], paid["amount"], paid["amount_text"]) == ("EURC", "2.5", "2.5 EURC")
    # on chain: EURC moved, USDC did not
    assert await token_balance(rpc, eurc, to) == 2_500_000
    assert await token_balance(rpc, usdc, to) == 0
    assert await token_balance(rpc, eurc, wallet["address"]) == 17_500_000
    assert await token_balance(rpc, usdc, wallet["address"]) == 5_000_000
    assert await _ledger(db_engine, paid["id"]) == [
        (f"wallet:{wallet['id']}", "EURC", -2_500_000),
        (f"external:{to}", "EURC", 2_500_000),
    ]
    # the balance answer lists every registered asset, the configured token first
    balance = (await http.get(f"/v1/wallets/{wallet['id']}/balance", headers=auth(dev))).json()
    assert [(t["symbol"], t["address"], t["amount"]) for t in balance["tokens"]] == [
        ("USDC", usdc, "5"),
        ("EURC", eurc, "17.5"),
    ]


async def test_a_limit_on_one_asset_does_not_limit_the_other(http, dev, app_settings):
    wallet = await funded_wallet(http, dev, app_settings, 50, eurc=50)
    policy_url = f"/v1/wallets/{wallet['id']}/spending-policy"

    # a USDC cap and a USDC daily limit (the policy's asset unset: the configured token)
    r = await http.put(
        policy_url,
        headers=auth(dev),
        json={"per_payment_cap": "1", "velocity": [{"name": "daily", "window_seconds": 86400, "max": "2"}]},
    )
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["asset"] == "USDC" and shown["velocity"][0]["asset"] == "USDC"
    assert shown["summary"] == "at most 1 USDC a payment; at most 2 USDC per 24 hours (daily)"
    usdc_over = await create(http, dev, _pay(wallet, "USDC", "1.5"))
    eurc_big = await create(http, dev, _pay(wallet, "EURC", "5"))
    assert (await wait_final(http, dev, usdc_over.json()["id"]))["failure_reason"].startswith("per_payment_cap")
    assert (await wait_final(http, dev, eurc_big.json()["id"]))["status"] == "confirmed"
    for _ in range(2):  # the USDC daily limit: 2 x 1 USDC, then refused; EURC goes on
        assert (await wait_final(http, dev, (await create(http, dev, _pay(wallet, "USDC", "1"))).json()["id"]))[
            "status"
        ] == "confirmed"
    third = await wait_final(http, dev, (await create(http, dev, _pay(wallet, "USDC", "1"))).json()["id"])
    assert third["status"] == "refused" and third["failure_reason"].startswith("velocity:daily"), third
    assert "2 USDC" in third["failure_reason"]
    eurc_more = await wait_final(http, dev, (await create(http, dev, _pay(wallet, "EURC", "6"))).json()["id"])
    assert eurc_more["status"] == "confirmed", eurc_more

    # and the other way round: an EURC cap and an EURC limit (its own asset) leave USDC alone
    r = await http.put(
        policy_url,
        headers=auth(dev),
        json={
            "asset": "eurc",
            "per_payment_cap": "1",
            "velocity": [{"name": "eur-hourly", "window_seconds": 3600, "max": "20", "asset": "EURC"}],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["asset"] == "EURC" and r.json()["velocity"][0]["asset"] == "EURC"
    eurc_over = await wait_final(http, dev, (await create(http, dev, _pay(wallet, "EURC", "1.5"))).json()["id"])
    usdc_big = await wait_final(http, dev, (await create(http, dev, _pay(wallet, "USDC", "5"))).json()["id"])
    assert eurc_over["status"] == "refused" and eurc_over["failure_reason"].startswith("per_payment_cap"), eurc_over
    assert "1 EURC" in eurc_over["failure_reason"]
    assert usdc_big["status"] == "confirmed", usdc_big
    # the EURC limit counts EURC only: 11 EURC spent in the hour, so 10 more fit and 0.000001 past that does not
    assert (await wait_final(http, dev, (await create(http, dev, _pay(wallet, "EURC", "1"))).json()["id"]))[
        "status"
    ] == "confirmed"
    r = await http.get(policy_url, headers=auth(dev))
    assert r.json()["summary"] == "at most 1 EURC a payment; at most 20 EURC per hour (eur-hourly)"


async def test_a_limit_for_each_asset_counts_each_on_its_own(http, dev, app_settings, db_engine):
    """A policy stored before assets (no `asset` anywhere) still limits every asset, each in its own count."""
    from paygent.db.reservations import save_policy
    from paygent.domain.spending import SpendingPolicy, VelocityLimit

    wallet = await funded_wallet(http, dev, app_settings, 20, eurc=20)
    legacy = SpendingPolicy(velocity=[VelocityLimit(name="daily", window_seconds=86400, max_atomic=3_000_000)])
    async with db_engine.begin() as conn:
        await save_policy(conn, uuid.UUID(wallet["id"]), legacy, "test")
    shown = (await http.get(f"/v1/wallets/{wallet['id']}/spending-policy", headers=auth(dev))).json()
    assert shown["asset"] is None and shown["summary"] == "at most 3 USDC of each asset per 24 hours (daily)"
    for asset in ("USDC", "EURC"):
        ok = await wait_final(http, dev, (await create(http, dev, _pay(wallet, asset, "3"))).json()["id"])
        over = await wait_final(http, dev, (await create(http, dev, _pay(wallet, asset, "0.5"))).json()["id"])
        assert ok["status"] == "confirmed" and over["status"] == "refused", (ok, over)
        assert over["failure_reason"].startswith("velocity:daily") and f"3 {asset}" in over["failure_reason"]


async def test_unknown_asset_is_422_naming_asset_and_the_known_ones(http, dev, nothing_started):  # noqa: F811
    wallet = dev["wallets"]["treasury"]
    for asset in ("EUR", "eurc ", "", "USDC/EURC"):
        r = await create(http, dev, _pay(wallet, asset, "1"))
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["field"] == "asset" and "unknown asset" in error["message"], error
        assert "known: USDC, EURC" in error["message"]


async def test_policy_asset_errors_name_the_field(http, dev):
    wallet_id = dev["wallets"]["treasury"]["id"]
    url = f"/v1/wallets/{wallet_id}/spending-policy"
    before = (await http.get(url, headers=auth(dev))).json()
    limit = {"name": "daily", "window_seconds": 86400, "max": "1"}
    for body, field in [
        ({"asset": "DAI", "per_payment_cap": "1"}, "asset"),
        ({"velocity": [limit, {**limit, "name": "other", "asset": "EUR"}]}, "velocity[1].asset"),
    ]:
        r = await http.put(url, headers=auth(dev), json=body)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    assert (await http.get(url, headers=auth(dev))).json() == before  # nothing was written
