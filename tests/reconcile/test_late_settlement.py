"""An x402 server that takes the signed authorization and settles it late (or never): the reconciler makes the
ledger equal the chain, and a reservation is held while the authorization could still be settled."""

from __future__ import annotations

import time

from paygent.chain.rpc import async_web3
from tests.api.helpers import auth, create, funded_wallet, token_balance, wait_final
from tests.reconcile.conftest import MAX_TIMEOUT_SECONDS, reconcile_once, reconcile_until
from tests.reconcile.helpers import (
    assert_replays,
    asset,
    audit_actions,
    ledger_equals_chain,
    ledger_rows,
    reconciliation,
    reservation_status,
)
from tests.reconcile.misbehaving_x402 import PRICE_ATOMIC


def x402_body(wallet_id: str, url: str) -> dict:
    return {"kind": "x402", "wallet_id": wallet_id, "url": url, "max_amount": "0.05", "memo": "late settlement"}


async def _pay(http, dev, wallet_id: str, url: str) -> dict:
    r = await create(http, dev, x402_body(wallet_id, url))
    assert r.status_code == 202, r.text
    return await wait_final(http, dev, r.json()["id"])


async def _settled_late(
    http, dev, db_engine, temporal_env, app_settings, wallet, misbehaving, path: str, closed_as: str, webhook
) -> None:
    closed = await _pay(http, dev, wallet["id"], f"{misbehaving.url}{path}")
    pid = closed["id"]
    assert closed["status"] == closed_as, closed
    assert closed["x402"]["authorization_valid_before"] > time.time()
    # closed as not paid, but the server holds a valid signed authorization: the budget stays reserved
    assert await reservation_status(db_engine, pid) == "reserved"
    assert await ledger_rows(db_engine, pid) == []

    async def confirmed() -> bool:
        r = await http.get(f"/v1/payments/{pid}", headers=auth(dev))
        return r.json()["status"] == "confirmed"

    await reconcile_until(temporal_env.client, app_settings.task_queue, confirmed, what=f"{path} payment {pid}")
    final = (await http.get(f"/v1/payments/{pid}", headers=auth(dev))).json()
    assert final["x402"]["outcome"] == "settled_late" and final["tx_hash"] and final["block_number"]
    steps = [h["status"] for h in final["status_history"] if h["status"]]
    assert steps[-2:] == [closed_as, "confirmed"], final["status_history"]
    assert "failed" not in steps
    assert await reservation_status(db_engine, pid) == "committed"
    rows = await ledger_rows(db_engine, pid)
    assert sorted(int(r["amount_atomic"]) for r in rows) == [-PRICE_ATOMIC, PRICE_ATOMIC]
    assert all(r["tx_hash"] == final["tx_hash"] for r in rows)
    assert "payment.settled_late" in await audit_actions(db_engine, "payment", pid)
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, misbehaving.pay_to) == PRICE_ATOMIC

    await reconcile_until(
        temporal_env.client,
        app_settings.task_queue,
        lambda: ledger_equals_chain(http, dev, wallet["id"], final["block_number"]),
        what="ledger == chain",
    )
    view = await reconciliation(http, dev, wallet["id"])
    assert view["mismatches"] == [] and view["open_authorizations"] == []
    usdc = asset(view, "USDC")
    assert int(usdc["chain_balance_atomic"]) == 100 * 10**6 - PRICE_ATOMIC
    assert [e["data"]["payment_id"] for e in webhook.of_type("payment.settled_late")] == [pid]
    await assert_replays(temporal_env.client, f"payment-{pid}")


async def test_200_without_receipt_then_settled_is_confirmed_late(
    http, dev, db_engine, temporal_env, app_settings, misbehaving, webhook
):
    wallet = await funded_wallet(http, dev, app_settings, 100)
    await _settled_late(
        http, dev, db_engine, temporal_env, app_settings, wallet, misbehaving, "/late-200", "cancelled", webhook
    )


async def test_402_then_settled_is_confirmed_late(
    http, dev, db_engine, temporal_env, app_settings, misbehaving, webhook
):
    wallet = await funded_wallet(http, dev, app_settings, 100)
    await _settled_late(
        http, dev, db_engine, temporal_env, app_settings, wallet, misbehaving, "/late-402", "refused", webhook
    )


async def test_never_settled_keeps_the_reservation_until_valid_before(
    http, dev, db_engine, temporal_env, app_settings, misbehaving, webhook
):
    wallet = await funded_wallet(http, dev, app_settings, 100)
    closed = await _pay(http, dev, wallet["id"], f"{misbehaving.url}/never")
    pid, valid_before = closed["id"], closed["x402"]["authorization_valid_before"]
    assert closed["status"] == "cancelled"
    assert valid_before <= time.time() + MAX_TIMEOUT_SECONDS + 1

    await reconcile_once(temporal_env.client, app_settings.task_queue)  # before validBefore: still held
    assert time.time() < valid_before
    assert await reservation_status(db_engine, pid) == "reserved"
    view = await reconciliation(http, dev, wallet["id"])
    assert [a["payment_id"] for a in view["open_authorizations"]] == [pid]

    async def released() -> bool:
        return await reservation_status(db_engine, pid) == "released"

    await reconcile_until(
        temporal_env.client,
        app_settings.task_queue,
        released,
        timeout=MAX_TIMEOUT_SECONDS + 40,
        what="reservation released after validBefore",
    )
    assert time.time() >= valid_before  # never released before the authorization expired
    final = (await http.get(f"/v1/payments/{pid}", headers=auth(dev))).json()
    assert final["status"] == "cancelled" and final["tx_hash"] is None
    assert [h["action"] for h in final["status_history"]][-1] == "payment.authorization_expired"
    assert await ledger_rows(db_engine, pid) == []
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, misbehaving.pay_to) == 0
    assert [e["data"]["payment_id"] for e in webhook.of_type("payment.authorization_expired")] == [pid]
    await reconcile_until(
        temporal_env.client,
        app_settings.task_queue,
        lambda: ledger_equals_chain(http, dev, wallet["id"]),
        what="ledger == chain",
    )
    view = await reconciliation(http, dev, wallet["id"])
    assert view["open_authorizations"] == [] and view["mismatches"] == []
    assert int(asset(view, "USDC")["chain_balance_atomic"]) == 100 * 10**6


async def test_paid_without_a_receipt_gets_its_transaction_from_the_scan(
    http, dev, db_engine, temporal_env, app_settings, misbehaving, webhook
):
    """The server settles, then answers 200 without the receipt: the chain shows the authorization used, so the
    workflow confirms the payment, knowing no transaction. The scan that matches the settlement records its
    transaction and block on the payment and its ledger entries, and books nothing twice."""
    wallet = await funded_wallet(http, dev, app_settings, 100)
    paid = await _pay(http, dev, wallet["id"], f"{misbehaving.url}/settled-no-receipt")
    pid = paid["id"]
    assert (paid["status"], paid["tx_hash"], paid["block_number"], paid["x402"]["receipt"]) == (
        "confirmed",
        None,
        None,
        None,
    ), paid
    booked = await ledger_rows(db_engine, pid)
    assert sorted(int(r["amount_atomic"]) for r in booked) == [-PRICE_ATOMIC, PRICE_ATOMIC]

    async def matched() -> bool:
        return (await http.get(f"/v1/payments/{pid}", headers=auth(dev))).json()["tx_hash"] is not None

    await reconcile_until(temporal_env.client, app_settings.task_queue, matched, what=f"transaction of {pid}")
    final = (await http.get(f"/v1/payments/{pid}", headers=auth(dev))).json()
    receipt = await async_web3(app_settings.rpc_url).eth.get_transaction_receipt(final["tx_hash"])
    print(f"\nx402 paid without a receipt: matched {final['tx_hash']} in block {final['block_number']}")
    assert receipt["status"] == 1 and receipt["blockNumber"] == final["block_number"] and final["status"] == "confirmed"
    assert [h["action"] for h in final["status_history"]][-1] == "payment.transaction_matched"
    rows = await ledger_rows(db_engine, pid)
    assert [r["id"] for r in rows] == [r["id"] for r in booked] and all(r["tx_hash"] == final["tx_hash"] for r in rows)
    await reconcile_once(temporal_env.client, app_settings.task_queue)  # again: nothing more to record
    assert (await audit_actions(db_engine, "payment", pid)).count("payment.transaction_matched") == 1
    assert [e["data"]["tx_hash"] for e in webhook.of_type("payment.transaction_matched")] == [final["tx_hash"]]
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, misbehaving.pay_to) == PRICE_ATOMIC
    await reconcile_until(
        temporal_env.client,
        app_settings.task_queue,
        lambda: ledger_equals_chain(http, dev, wallet["id"], final["block_number"]),
        what="ledger == chain",
    )
    view = await reconciliation(http, dev, wallet["id"])
    assert view["mismatches"] == [] and int(asset(view, "USDC")["chain_balance_atomic"]) == 100 * 10**6 - PRICE_ATOMIC
