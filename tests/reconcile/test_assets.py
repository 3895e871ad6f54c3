"""The reconciler with two assets: every registered asset (USDC, EURC) of every wallet is scanned and compared
on its own, ledger against chain, and payments in both leave no mismatch. Everything real: the payment workflow
and ReconcileWorkflow on the session's worker, anvil, the API."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from paygent.db.reconcile_schema import reconcile_movements
from tests.api.helpers import create, eurc_address, funded_wallet, new_recipient, token_balance, wait_final
from tests.reconcile.conftest import reconcile_until
from tests.reconcile.helpers import asset, audit_actions, reconciliation

ASSETS = ("USDC", "EURC")


async def _equal(http, dev, wallet_id: str, block: int = 0) -> bool:
    """Both assets checkpointed at or past `block`, each with ledger == chain there."""
    view = await reconciliation(http, dev, wallet_id)
    seen = {a["asset"]: a for a in view["assets"]}
    return all(
        name in seen
        and seen[name]["checkpoint_block"] >= block
        and seen[name]["ledger_balance_atomic"] == seen[name]["chain_balance_atomic"]
        for name in ASSETS
    )


async def _payment_movements(db_engine, wallet_id: str) -> list[tuple[str, int]]:
    async with db_engine.connect() as conn:
        rows = await conn.execute(
            sa.select(reconcile_movements.c.asset, reconcile_movements.c.amount_atomic)
            .where(reconcile_movements.c.wallet_id == uuid.UUID(wallet_id), reconcile_movements.c.kind == "payment")
            .order_by(reconcile_movements.c.id)
        )
        return [(r.asset, int(r.amount_atomic)) for r in rows]


async def test_payments_in_both_assets_reconcile_with_no_mismatch(http, dev, db_engine, temporal_env, app_settings):
    client, queue, rpc = temporal_env.client, app_settings.task_queue, app_settings.rpc_url
    wallet = await funded_wallet(http, dev, app_settings, 30, eurc=40)
    await reconcile_until(client, queue, lambda: _equal(http, dev, wallet["id"]), what="funded in both assets")
    funded = await reconciliation(http, dev, wallet["id"])
    assert [int(asset(funded, name)["chain_balance_atomic"]) for name in ASSETS] == [30 * 10**6, 40 * 10**6]

    ids = []
    for name, amount in (("USDC", "1.25"), ("EURC", "4"), ("EURC", "0.5")):
        r = await create(http, dev, {"wallet_id": wallet["id"], "to": new_recipient(), "amount": amount, "asset": name})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    paid = [await wait_final(http, dev, pid) for pid in ids]
    assert [p["status"] for p in paid] == ["confirmed"] * 3, paid
    last = max(p["block_number"] for p in paid)
    await reconcile_until(client, queue, lambda: _equal(http, dev, wallet["id"], last), what="payments in both")

    view = await reconciliation(http, dev, wallet["id"])
    usdc, eurc = asset(view, "USDC"), asset(view, "EURC")
    print(
        f"\nafter payments in both assets: USDC ledger {usdc['ledger_balance_atomic']} chain "
        f"{usdc['chain_balance_atomic']}; EURC ledger {eurc['ledger_balance_atomic']} chain "
        f"{eurc['chain_balance_atomic']}"
    )
    assert int(usdc["chain_balance_atomic"]) == 28_750_000 == int(usdc["ledger_balance_atomic"])
    assert int(eurc["chain_balance_atomic"]) == 35_500_000 == int(eurc["ledger_balance_atomic"])
    assert int(eurc["chain_balance_atomic"]) == await token_balance(rpc, eurc_address(app_settings), wallet["address"])
    assert view["mismatches"] == []
    assert "reconciliation.mismatch" not in await audit_actions(db_engine, "wallet", wallet["id"])
    # each Transfer log booked under its own asset, matched to its payment
    assert await _payment_movements(db_engine, wallet["id"]) == [
        ("USDC", -1_250_000),
        ("EURC", -4_000_000),
        ("EURC", -500_000),
    ]
