"""Funds that leave a wallet straight on anvil, not through Paygent, are a reconciliation mismatch."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import WorkflowExecutionStatus

from paygent import search_attributes as sattr
from paygent.chain.rpc import async_web3
from paygent.chain.token import transfer_calldata
from paygent.db.reconcile_schema import reconcile_checkpoints
from tests.api.helpers import funded_wallet, new_recipient
from tests.reconcile.conftest import reconcile_once, reconcile_until
from tests.reconcile.helpers import asset, audit_actions, ledger_equals_chain, reconciliation
from workflows import reconcile_types as r

STRAY = 7_000_000


async def _stray_transfer(rpc_url: str, token: str, wallet: str, to: str) -> str:
    """A transfer signed by nobody at Paygent: anvil impersonates the wallet's address."""
    w3 = async_web3(rpc_url)
    await w3.provider.make_request("anvil_impersonateAccount", [wallet])
    try:
        tx = await w3.eth.send_transaction({"from": wallet, "to": token, "data": transfer_calldata(to, STRAY)})
        receipt = await w3.eth.wait_for_transaction_receipt(tx)
    finally:
        await w3.provider.make_request("anvil_stopImpersonatingAccount", [wallet])
    assert receipt["status"] == 1
    return "0x" + bytes(tx).hex().removeprefix("0x")


async def test_stray_transfer_is_a_mismatch(http, dev, db_engine, temporal_env, app_settings, webhook):
    wallet = await funded_wallet(http, dev, app_settings, 50)
    await reconcile_until(
        temporal_env.client,
        app_settings.task_queue,
        lambda: ledger_equals_chain(http, dev, wallet["id"]),
        what="funded wallet reconciled",
    )
    clean = await reconciliation(http, dev, wallet["id"])
    assert clean["mismatches"] == [] and int(asset(clean, "USDC")["chain_balance_atomic"]) == 50 * 10**6
    assert asset(clean, "ETH")["ledger_balance_atomic"] == asset(clean, "ETH")["chain_balance_atomic"]

    to = new_recipient()
    tx_hash = await _stray_transfer(app_settings.rpc_url, app_settings.token_address, wallet["address"], to)

    async def found() -> bool:
        return any(m["tx_hash"] == tx_hash for m in (await reconciliation(http, dev, wallet["id"]))["mismatches"])

    await reconcile_until(temporal_env.client, app_settings.task_queue, found, what="stray transfer found")
    view = await reconciliation(http, dev, wallet["id"])
    token_mismatch = next(m for m in view["mismatches"] if m["tx_hash"] == tx_hash)
    assert token_mismatch["asset"] == "USDC" and int(token_mismatch["amount_atomic"]) == -STRAY
    assert token_mismatch["counterparty"] == to
    usdc = asset(view, "USDC")
    assert int(usdc["chain_balance_atomic"]) == 50 * 10**6 - STRAY
    assert int(usdc["difference_atomic"]) == -STRAY  # the ledger still holds what Paygent knows of
    # the gas the stray transaction burned left the wallet unexplained too
    assert any(m["asset"] == "ETH" and int(m["amount_atomic"]) < 0 for m in view["mismatches"])
    assert "reconciliation.mismatch" in await audit_actions(db_engine, "wallet", wallet["id"])
    events = [e for e in webhook.of_type("reconciliation.mismatch") if e["data"].get("tx_hash") == tx_hash]
    assert len(events) == 1 and events[0]["data"]["wallet_id"] == wallet["id"]

    assert await _runs_flagged(temporal_env.client) >= 1

    # a rerun finds nothing new: mismatches are recorded once
    again = await reconcile_once(temporal_env.client, app_settings.task_queue)
    assert len((await reconciliation(http, dev, wallet["id"]))["mismatches"]) == len(view["mismatches"])
    assert again.mismatches == 0

    # any block range can be scanned again (a crash, an operator moving the checkpoint back): nothing doubles
    audits = await audit_actions(db_engine, "wallet", wallet["id"])
    async with db_engine.begin() as conn:
        await conn.execute(
            reconcile_checkpoints.update()
            .where(
                reconcile_checkpoints.c.wallet_id == uuid.UUID(wallet["id"]), reconcile_checkpoints.c.asset == "USDC"
            )
            .values(block_number=-1, chain_balance=0)
        )
    await reconcile_once(temporal_env.client, app_settings.task_queue)
    rescanned = await reconciliation(http, dev, wallet["id"])
    assert rescanned["mismatches"] == view["mismatches"]
    assert [(a["asset"], a["ledger_balance_atomic"], a["chain_balance_atomic"]) for a in rescanned["assets"]] == [
        (a["asset"], a["ledger_balance_atomic"], a["chain_balance_atomic"]) for a in view["assets"]
    ]
    assert await audit_actions(db_engine, "wallet", wallet["id"]) == audits


async def _runs_flagged(client) -> int:
    """Reconcile runs that operators find with `PaygentReconcile = "mismatch"` (visibility lags a little)."""
    for _ in range(100):
        found = [w async for w in client.list_workflows(f'{sattr.RECONCILE.name} = "{sattr.RECONCILE_MISMATCH}"')]
        if found:
            return len(found)
        await asyncio.sleep(0.1)
    return 0


async def test_reconcile_run_carries_a_search_attribute(temporal_env, app_settings, worker):
    handle = await temporal_env.client.start_workflow(
        r.WORKFLOW_NAME, r.ReconcileInput(), id="reconcile-sa-test", task_queue=app_settings.task_queue
    )
    await handle.result()
    described = await handle.describe()
    assert described.status == WorkflowExecutionStatus.COMPLETED
    assert described.typed_search_attributes.get(sattr.RECONCILE) in (sattr.RECONCILE_CLEAN, sattr.RECONCILE_MISMATCH)


async def test_reconciliation_is_for_admins_and_auditors(http, dev):
    from tests.api.helpers import auth

    wallet_id = dev["wallets"]["treasury"]["id"]
    r_ = await http.get(f"/v1/wallets/{wallet_id}/reconciliation", headers=auth(dev, "bob"))
    assert r_.status_code == 403 and "admin or auditor" in r_.text
    assert (await http.get("/v1/wallets/not-a-uuid/reconciliation", headers=auth(dev))).status_code == 404
    assert (await http.get(f"/v1/wallets/{wallet_id}/reconciliation")).status_code == 401
