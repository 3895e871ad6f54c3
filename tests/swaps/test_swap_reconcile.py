"""The reconciler sees a swap as no mismatch: the input leg out is the swap's payment movement, its gas (approve +
swap) is explained, and (once the reconciler reads EURC) the output leg in is the swap's, not a deposit."""

from __future__ import annotations

from tests.api.helpers import funded_wallet
from tests.reconcile.conftest import reconcile_until
from tests.reconcile.helpers import ledger_equals_chain, reconciliation
from tests.swaps import helpers as h


async def test_a_swap_reconciles_with_no_mismatch(http, dev, db_engine, temporal_env, app_settings):
    wallet = await funded_wallet(http, dev, app_settings, 50)
    client, queue = temporal_env.client, app_settings.task_queue
    await reconcile_until(client, queue, lambda: ledger_equals_chain(http, dev, wallet["id"]), what="funded")
    r = await h.swap(http, dev, {**h.body(dev, "10"), "wallet_id": wallet["id"]})
    assert r.status_code == 202, r.text
    view = await h.wait_swap(http, dev, r.json()["id"])
    assert view["status"] == "confirmed", view
    await reconcile_until(
        client, queue, lambda: ledger_equals_chain(http, dev, wallet["id"], view["block_number"]), what="swap"
    )
    rec = await reconciliation(http, dev, wallet["id"])
    assert rec["mismatches"] == [], rec  # neither the USDC leg nor the gas of approve + swap is unexplained
    usdc = next(a for a in rec["assets"] if a["asset"] == "USDC")
    assert int(usdc["ledger_balance_atomic"]) == int(usdc["chain_balance_atomic"]) == 40 * 10**6
    eurc = next(a for a in rec["assets"] if a["asset"] == "EURC")  # the output leg: booked once, not a deposit
    assert int(eurc["ledger_balance_atomic"]) == int(eurc["chain_balance_atomic"]) == int(view["amount_out_atomic"])
