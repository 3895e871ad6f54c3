"""A paid request the server does not settle: the signed authorization keeps its amount reserved until it expires
(as a single x402 payment does), the session counts it as held, and the reconciler's sweep finds it."""

from __future__ import annotations

import uuid

from paygent.db.reconcile import held_authorizations
from paygent.db.tenancy import tenant_transaction
from tests.api.helpers import auth, funded_wallet, token_balance
from tests.x402.sessions import fetch, reservation, start, status


async def test_an_unsettled_request_holds_its_amount_for_the_reconciler(
    http, dev, paid_service, app_settings, db_engine
):
    wallet = await funded_wallet(http, dev, app_settings, 0)  # ETH, no tokens: the facilitator refuses to settle
    body = {"wallet_id": wallet["id"], "budget": "0.05", "ttl_seconds": 120, "origins": [paid_service.url]}
    sid = (await start(http, dev, body)).json()["id"]

    r = await fetch(http, dev, sid, f"{paid_service.url}/weather")
    assert r.status_code == 502 and r.json()["error"]["code"] == "unsettled", r.text
    assert "stays valid until" in r.json()["error"]["message"]
    seen = await status(http, dev, sid)
    assert (seen["spent"], seen["held"], seen["remaining"]) == ("0", "0.01", "0.04")
    [request] = seen["requests"]
    assert request["status"] == "cancelled"
    assert await reservation(db_engine, request["payment_id"]) == ("reserved", 10_000)  # held until validBefore
    assert await reservation(db_engine, sid) == ("reserved", 40_000)
    async with tenant_transaction(db_engine, dev["tenant"]["id"]) as conn:
        held = await held_authorizations(conn, uuid.UUID(wallet["id"]))
    assert [str(p["id"]) for p in held] == [request["payment_id"]]  # the reconciler settles or releases it

    ended = (await http.delete(f"/v1/x402/sessions/{sid}", headers=auth(dev))).json()
    assert ended["status"] == "closed" and ended["held"] == "0.01"
    assert await reservation(db_engine, sid) == ("released", 40_000)
    assert await reservation(db_engine, request["payment_id"]) == ("reserved", 10_000)  # still the reconciler's
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 0
