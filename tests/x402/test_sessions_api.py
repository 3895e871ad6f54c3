"""x402 spending sessions through the HTTP API: the real worker, the official x402 server settling on anvil."""

from __future__ import annotations

import asyncio
import json

from tests.api.helpers import auth, token_balance
from tests.x402.sessions import audit_rows, fetch, ledger, reservation, session_body, start, status


async def test_a_session_reserves_once_pays_each_request_once_and_releases_the_rest(
    http, dev, paid_service, app_settings, db_engine
):
    r = await start(http, dev, session_body(dev, paid_service.url, budget="0.05", max_price="0.02"))
    assert r.status_code == 201, r.text
    session = r.json()
    assert session["status"] == "active" and session["budget"] == "0.05" and session["remaining"] == "0.05"
    assert await reservation(db_engine, session["id"]) == ("reserved", 50_000)  # the budget, reserved once

    r = await fetch(http, dev, session["id"], f"{paid_service.url}/weather", key="first")
    assert r.status_code == 200, r.text
    paid = r.json()
    assert paid["status_code"] == 200 and json.loads(paid["body"])["city"] == "Lisbon"
    assert paid["paid"]["amount"] == "0.01" and paid["paid"]["tx_hash"].startswith("0x")
    assert "body_encoding" not in paid  # text
    pid = paid["paid"]["payment_id"]
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 10_000

    again = await fetch(http, dev, session["id"], f"{paid_service.url}/weather", key="first")  # a retried request
    assert again.status_code == 200 and again.json()["paid"]["payment_id"] == pid
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 10_000

    second = await fetch(http, dev, session["id"], f"{paid_service.url}/weather")
    assert second.status_code == 200 and second.json()["paid"]["payment_id"] != pid
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 20_000

    seen = await status(http, dev, session["id"])
    assert (seen["spent"], seen["remaining"], seen["status"]) == ("0.02", "0.03", "active")
    assert [q["status"] for q in seen["requests"]] == ["confirmed", "confirmed"]
    assert seen["requests"][0]["payment_identifier"] == f"paygent_{pid.replace('-', '')}"

    # each paid request is an x402 payment with its session, ledger entries and an audit row
    listed = (await http.get("/v1/payments?limit=200", headers=auth(dev))).json()["items"]
    mine = [p for p in listed if p.get("session_id") == session["id"]]
    assert len(mine) == 2 and {p["kind"] for p in mine} == {"x402"} and {p["status"] for p in mine} == {"confirmed"}
    assert await ledger(db_engine, pid) == {
        f"wallet:{dev['wallets']['treasury']['id']}": -10_000,
        f"external:{paid_service.pay_to}": 10_000,
    }
    [row] = await audit_rows(db_engine, pid, "x402_session.paid")
    assert row["channel"] == "api" and row["url"] == f"{paid_service.url}/weather"
    assert row["amount_atomic"] == "10000" and row["payment_identifier"] == f"paygent_{pid.replace('-', '')}"
    assert await reservation(db_engine, pid) == ("committed", 10_000)
    assert await reservation(db_engine, session["id"]) == ("reserved", 30_000)

    r = await http.delete(f"/v1/x402/sessions/{session['id']}", headers=auth(dev))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed" and r.json()["spent"] == "0.02" and r.json()["remaining"] == "0"
    assert await reservation(db_engine, session["id"]) == ("released", 30_000)

    after = await fetch(http, dev, session["id"], f"{paid_service.url}/weather")
    assert after.status_code == 409 and after.json()["error"]["code"] == "session_not_active", after.text
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 20_000


async def test_refusals_name_the_reason_and_sign_nothing(http, dev, paid_service, app_settings, db_engine):
    session = (await start(http, dev, session_body(dev, paid_service.url, budget="0.015", max_price="0.01"))).json()
    sid = session["id"]

    r = await fetch(http, dev, sid, "http://example.com/weather")
    assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed", r.text
    r = await fetch(http, dev, sid, f"{paid_service.url}/weather", max_amount="0.02")
    assert r.status_code == 409 and r.json()["error"]["code"] == "over_ceiling", r.text
    assert r.json()["error"]["field"] == "max_amount"
    r = await fetch(http, dev, sid, f"{paid_service.url}/premium")  # the server asks 2 USDC: above the ceiling
    assert r.status_code == 409 and r.json()["error"]["code"] == "over_ceiling", r.text
    assert "2000000" in r.json()["error"]["message"]
    assert (await status(http, dev, sid))["requests"] == []  # nothing was signed: no payment at all

    assert (await fetch(http, dev, sid, f"{paid_service.url}/weather")).status_code == 200
    r = await fetch(http, dev, sid, f"{paid_service.url}/weather")  # 0.005 left, the price is 0.01
    assert r.status_code == 409 and r.json()["error"]["code"] == "over_budget", r.text
    seen = await status(http, dev, sid)
    assert seen["spent"] == "0.01" and len(seen["requests"]) == 1 and "over_budget" in seen["last_error"]
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 10_000


async def test_an_expired_session_refuses_and_releases_its_budget(http, dev, paid_service, db_engine):
    session = (await start(http, dev, session_body(dev, paid_service.url, ttl=2))).json()
    assert session["status"] == "active"
    await asyncio.sleep(2.5)
    r = await fetch(http, dev, session["id"], f"{paid_service.url}/weather")
    assert r.status_code == 410 and r.json()["error"]["code"] == "session_expired", r.text
    for _ in range(50):
        seen = await status(http, dev, session["id"])
        if seen["status"] == "expired":
            break
        await asyncio.sleep(0.1)
    assert seen["status"] == "expired" and seen["remaining"] == "0"
    assert await reservation(db_engine, session["id"]) == ("released", 50_000)


async def test_doors_check_role_grant_and_input(http, dev, paid_service):
    body = session_body(dev, paid_service.url)
    r = await start(http, dev, body, user="erin")  # an auditor may not spend
    assert r.status_code == 403, r.text
    r = await start(http, dev, {**body, "wallet_id": dev["wallets"]["ops"]["id"]}, user="alice")
    assert r.status_code == 201, r.text  # alice holds spend on ops too
    r = await start(http, dev, {**body, "origins": [f"{paid_service.url}/path"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "origins", r.text
    r = await start(http, dev, {**body, "budget": "-1"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "budget", r.text
    r = await start(http, dev, {**body, "max_price": "1"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "max_price", r.text
    r = await start(http, dev, {**body, "origins": ["http://10.0.0.1:8080"]})  # egress policy: a private address
    assert r.status_code == 422 and r.json()["error"]["field"] == "origins", r.text

    sid = (await start(http, dev, body)).json()["id"]
    r = await fetch(http, dev, sid, f"{paid_service.url}/weather", user="bob")  # an approver: no requester role
    assert r.status_code == 403, r.text
    r = await http.get(f"/v1/x402/sessions/{sid}", headers=auth(dev, "bob"))  # not his: not found
    assert r.status_code == 404, r.text
    r = await http.get(f"/v1/x402/sessions/{sid}", headers=auth(dev, "erin"))  # auditors see the tenant's
    assert r.status_code == 200, r.text
    r = await http.delete(f"/v1/x402/sessions/{sid}", headers=auth(dev, "erin"))
    assert r.status_code == 403, r.text


async def test_parallel_requests_never_spend_past_the_budget(http, dev, paid_service, app_settings, db_engine):
    session = (await start(http, dev, session_body(dev, paid_service.url, budget="0.02", max_price="0.01"))).json()
    answers = await asyncio.gather(*(fetch(http, dev, session["id"], f"{paid_service.url}/weather") for _ in range(4)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200, 409, 409], [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"over_budget"}
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 20_000
    assert await reservation(db_engine, session["id"]) == ("reserved", 0)
    assert (await status(http, dev, session["id"]))["remaining"] == "0"
