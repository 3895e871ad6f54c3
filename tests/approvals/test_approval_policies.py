"""Approval policies over HTTP: admins only, every change audited, amounts as decimal strings, and errors that
name the exact field (`tiers[1].max_amount`) so a person can fix the request without guessing.
"""

from __future__ import annotations

import sqlalchemy as sa

from paygent.db.schema import audit_log
from tests.api.helpers import auth, funded_wallet
from tests.approvals.helpers import tiers

TRIO = ["bob", "carol", "dave"]
DEFAULT_AS_SENT = {
    "tiers": [  # the built-in dev policy, stored explicitly: other tests see no difference
        {"max_amount": "100", "approvals_required": 0, "approvers": []},
        {"max_amount": "1000", "approvals_required": 1, "approvers": TRIO},
        {"max_amount": "10000", "approvals_required": 2, "approvers": TRIO, "timelock_seconds": 3600},
        {"max_amount": None, "approvals_required": 3, "approvers": TRIO, "timelock_seconds": 3600},
    ]
}


async def _audited(engine, action: str) -> list[tuple[str, str, dict]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(audit_log.c.actor, audit_log.c.channel, audit_log.c.data)
            .where(audit_log.c.action == action)
            .order_by(audit_log.c.id)
        )
        return [tuple(r) for r in rows]


async def test_tenant_policy_is_for_admins_and_every_change_is_audited(http, dev, db_engine):
    r = await http.put("/v1/approval-policy", json=DEFAULT_AS_SENT, headers=auth(dev, "bob"))
    assert r.status_code == 403, r.text
    assert (await http.get("/v1/approval-policy", headers=auth(dev, "bob"))).status_code == 403

    before = await http.get("/v1/approval-policy", headers=auth(dev))
    assert before.status_code == 200 and before.json()["source"] in ("default", "tenant")
    assert [t["max_amount"] for t in before.json()["tiers"]] == ["100", "1000", "10000", None]

    r = await http.put("/v1/approval-policy", json=DEFAULT_AS_SENT, headers=auth(dev))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "tenant" and body["tiers"][2]["max_amount_atomic"] == "10000000000"
    assert body["tiers"][3]["describe"] == "3 of bob, carol, dave"
    assert (await http.get("/v1/approval-policy", headers=auth(dev))).json()["source"] == "tenant"
    actor, channel, data = (await _audited(db_engine, "approval_policy.saved"))[-1]
    assert (actor, channel) == ("alice", "api")
    assert data["policy"]["tiers"][1]["max_amount_atomic"] == 1_000_000_000 and data["wallet_id"] is None


async def test_policy_errors_name_the_field(http, dev):
    def with_tier(i: int, **change) -> dict:
        body = {"tiers": [dict(t) for t in DEFAULT_AS_SENT["tiers"]]}
        body["tiers"][i].update(change)
        return body

    cases = [
        (with_tier(1, max_amount="1,000"), "tiers[1].max_amount"),
        (with_tier(1, max_amount=1000), "tiers[1].max_amount"),  # a JSON number: refused, never a float
        (with_tier(2, max_amount="50"), "tiers[2].max_amount"),  # not ascending
        (with_tier(3, max_amount="20000"), "tiers[3].max_amount"),  # the last tier must be unbounded
        (with_tier(1, max_amount=None), "tiers[1].max_amount"),
        (with_tier(2, approvers=["bob", "carl"]), "tiers[2].approvers[1]"),  # no such user
        (with_tier(2, approvers=["bob", "bob"]), "tiers[2].approvers"),
        (with_tier(3, approvals_required=4), "tiers[3].approvals_required"),
        (with_tier(2, timelock_seconds=-1), "tiers[2].timelock_seconds"),
        (with_tier(0, approvers_typo=[]), "tiers[0].approvers_typo"),
        ({"tiers": []}, "tiers"),
        ({}, "tiers"),
    ]
    for body, field in cases:
        r = await http.put("/v1/approval-policy", json=body, headers=auth(dev))
        assert r.status_code == 422, (field, r.text)
        error = r.json()["error"]
        assert error["field"] == field and error["message"].startswith(field), (field, error)


async def test_wallet_override_falls_back_to_the_tenant_policy_when_deleted(http, dev, app_settings, db_engine):
    wallet = await funded_wallet(http, dev, app_settings, 0)
    path = f"/v1/wallets/{wallet['id']}/approval-policy"
    inherited = (await http.get(path, headers=auth(dev))).json()
    assert inherited["scope"] == "wallet" and inherited["source"] in ("default", "tenant")

    assert (await http.put(path, json=tiers(timelock=2), headers=auth(dev, "carol"))).status_code == 403
    r = await http.put(path, json=tiers(timelock=2), headers={**auth(dev), "X-Paygent-Channel": "cli"})
    assert r.status_code == 200, r.text
    got = (await http.get(path, headers=auth(dev))).json()
    assert got["source"] == "wallet" and got["tiers"][1]["timelock_seconds"] == 2
    actor, channel, data = (await _audited(db_engine, "approval_policy.saved"))[-1]
    assert (actor, channel, data["wallet_id"]) == ("alice", "cli", wallet["id"])

    r = await http.delete(path, headers=auth(dev))
    assert r.status_code == 200 and r.json()["deleted"] is True, r.text
    assert r.json()["effective"]["source"] in ("default", "tenant")
    assert (await http.delete(path, headers=auth(dev))).json()["deleted"] is False
    assert (await _audited(db_engine, "approval_policy.deleted"))[-1][:2] == ("alice", "api")
    assert (
        await http.get("/v1/wallets/00000000-0000-0000-0000-000000000000/approval-policy", headers=auth(dev))
    ).status_code == 404
