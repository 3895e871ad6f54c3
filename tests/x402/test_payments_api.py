"""x402 payments through the public API: POST /v1/payments {"kind": "x402", ...} runs PaymentWorkflow."""

from __future__ import annotations

from tests.api.helpers import auth, create, token_balance, wait_final


def x402_body(dev, url: str, max_amount: str = "0.05") -> dict:
    return {
        "kind": "x402",
        "wallet_id": dev["wallets"]["treasury"]["id"],
        "url": url,
        "max_amount": max_amount,
        "memo": "agent fetch",
    }


async def test_paid_fetch_settles_once_and_is_recorded(http, dev, paid_service, app_settings):
    r = await create(http, dev, x402_body(dev, f"{paid_service.url}/weather"))
    assert r.status_code == 202, r.text
    final = await wait_final(http, dev, r.json()["id"])
    assert final["status"] == "confirmed", final
    assert final["kind"] == "x402" and final["amount"] == "0.01" and final["to"] == paid_service.pay_to
    assert final["x402"]["outcome"] == "paid" and final["x402"]["response_status"] == 200
    assert final["x402"]["receipt"]["success"] is True
    assert "signed" not in final["x402"]
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 10_000


async def test_server_asking_more_than_the_cap_is_refused_and_nothing_moves(http, dev, paid_service, app_settings):
    r = await create(http, dev, x402_body(dev, f"{paid_service.url}/overcharge", max_amount="1"))
    final = await wait_final(http, dev, r.json()["id"])
    assert final["status"] == "refused"
    assert "X402Refused" in final["failure_reason"]
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 0


async def test_a_url_that_asks_no_payment_ends_cancelled_and_nothing_moves(http, dev, paid_service, app_settings):
    r = await create(http, dev, x402_body(dev, f"{paid_service.url}/healthz"))
    final = await wait_final(http, dev, r.json()["id"])
    assert final["status"] == "cancelled", final
    assert "without asking for payment" in final["failure_reason"]
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 0


async def test_server_failing_after_payment_keeps_the_receipt(http, dev, paid_service, app_settings):
    r = await create(http, dev, x402_body(dev, f"{paid_service.url}/fail-after-pay"))
    final = await wait_final(http, dev, r.json()["id"])
    assert final["status"] == "confirmed"  # the money moved: the receipt says so, the 500 is recorded
    assert final["x402"]["outcome"] == "paid_server_error" and final["x402"]["response_status"] == 500
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 10_000


async def test_bad_x402_input_names_the_field(http, dev):
    r = await create(http, dev, x402_body(dev, "ftp://example/x"))
    assert r.status_code == 422 and r.json()["error"]["field"] == "url"
    r = await create(http, dev, {**x402_body(dev, "http://127.0.0.1:1/x"), "max_amount": "-1"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "max_amount"
    r = await create(http, dev, {**x402_body(dev, "http://127.0.0.1:1/x"), "to": "0x00"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "to"
    r = await http.post("/v1/payments", json={"kind": "swap"}, headers={**auth(dev), "Idempotency-Key": "k-swap"})
    assert r.status_code == 422
