"""Amounts a person or a model reads say token units ("7 USDC"), with the atomic figure beside them in JSON:
limit refusals, spending policies, agents, paid services, and the payment's search attributes in Temporal."""

from __future__ import annotations

import sqlalchemy as sa

from paygent import search_attributes as sattr
from paygent.db.schema import audit_log
from paygent.domain.payment import payment_workflow_id
from tests.api.helpers import auth, create, funded_wallet, new_recipient, wait_final


async def test_refusals_and_policy_say_token_units(http, dev, app_settings, temporal_env, db_engine):
    wallet = await funded_wallet(http, dev, app_settings, 50)
    r = await http.put(
        f"/v1/wallets/{wallet['id']}/spending-policy",
        headers=auth(dev),
        json={"per_payment_cap": "5", "velocity": [{"name": "daily", "window_seconds": 86400, "max": "6"}]},
    )
    assert r.status_code == 200, r.text
    policy = (await http.get(f"/v1/wallets/{wallet['id']}/spending-policy", headers=auth(dev))).json()
    assert (policy["per_payment_cap"], policy["per_payment_cap_atomic"]) == ("5", 5_000_000)
    assert (policy["velocity"][0]["max"], policy["velocity"][0]["max_atomic"]) == ("6", 6_000_000)
    assert policy["summary"] == "at most 5 USDC a payment; at most 6 USDC per 24 hours (daily)"

    def body(amount: str) -> dict:
        return {"wallet_id": wallet["id"], "to": new_recipient(), "amount": amount, "asset": "USDC"}

    over = (await create(http, dev, body("7"))).json()
    refused = await wait_final(http, dev, over["id"])
    assert refused["status"] == "refused"
    assert refused["failure_reason"] == "per_payment_cap: 7 USDC exceeds the per-payment cap of 5 USDC"
    assert refused["amount_atomic"] == "7000000"
    paid = await wait_final(http, dev, (await create(http, dev, body("3"))).json()["id"])
    assert paid["status"] == "confirmed"
    daily = await wait_final(http, dev, (await create(http, dev, body("4.5"))).json()["id"])
    assert daily["failure_reason"] == (
        "velocity:daily: 4.5 USDC would exceed the daily limit of 6 USDC per 24 hours: 3 USDC already used, 3 USDC left"
    )
    async with db_engine.connect() as conn:
        audited = (
            await conn.execute(
                sa.select(audit_log.c.data).where(
                    audit_log.c.subject_id == over["id"], audit_log.c.action == "payment.limit_refused"
                )
            )
        ).scalar_one()
    assert audited["limit_atomic"] == "5000000" and "7 USDC" in audited["message"]

    described = await temporal_env.client.get_workflow_handle(payment_workflow_id(over["id"])).describe()
    attributes = described.typed_search_attributes
    assert attributes.get(sattr.AMOUNT) == 7_000_000 and attributes.get(sattr.AMOUNT_TEXT) == "7 USDC"


async def test_agents_and_paid_services_show_token_units(http, dev):
    r = await http.post(
        "/v1/agents",
        headers=auth(dev),
        json={
            "name": "readable-amounts",
            "wallet_ids": [dev["wallets"]["treasury"]["id"]],
            "spending_policy": {
                "per_payment_cap": "2.5",
                "velocity": [{"name": "hourly", "window_seconds": 3600, "max": "10"}],
            },
        },
    )
    assert r.status_code == 201, r.text
    shown = (await http.get(f"/v1/agents/{r.json()['id']}", headers=auth(dev))).json()["spending_policy"]
    assert shown["summary"] == "at most 2.5 USDC a payment; at most 10 USDC per hour (hourly)"
    assert (shown["per_payment_cap"], shown["per_payment_cap_atomic"], shown["asset"]) == ("2.5", 2_500_000, "USDC")
