"""The balance comparison: per wallet and asset, the balance the ledger implies against the chain's at the
checkpoint block. A payment to the wallet's own address, and transfers made outside Paygent, each end as
ledger == chain or as an open mismatch naming why; a mismatch is recorded once and resolves when the chain
and the ledger agree again. Everything real: the payment workflow on the session's worker, anvil, the API."""

from __future__ import annotations

import re
import uuid

import sqlalchemy as sa
from eth_utils import keccak, to_checksum_address
from web3 import AsyncWeb3

from paygent.chain.rpc import async_web3
from paygent.chain.token import balance_of, transfer_calldata
from paygent.db.engine import get_engine
from paygent.db.payments import NewPayment, payment_request, record_payment
from paygent.db.reconcile_schema import reconcile_movements
from paygent.db.tenancy import tenant_transaction
from paygent.domain.channels import Channel
from paygent.payment_start import start_payment_workflow
from tests.api.helpers import funded_wallet, wait_final
from tests.reconcile.conftest import reconcile_once, reconcile_until
from tests.reconcile.helpers import asset, audit_actions, ledger_equals_chain, reconciliation

CENT = 10_000  # 0.01 USDC


async def _self_payment(client, app_settings, dev, wallet: dict) -> str:
    """A payment from the wallet to its own address, recorded and run as the API would (the API now refuses
    such a payment at the edge; payments recorded before that, or arriving by another door, still exist)."""
    tenant = uuid.UUID(dev["tenant"]["id"])
    new = NewPayment(
        payment_id=uuid.uuid4(),
        tenant_id=tenant,
        requested_by_id=uuid.UUID(dev["users"]["alice"]["id"]),
        actor="alice",
        channel=Channel.api,
        wallet_id=uuid.UUID(wallet["id"]),
        idempotency_key=uuid.uuid4().hex,
        chain_id=app_settings.chain_id,
        asset="USDC",
        token_address=app_settings.token_address,
        to=wallet["address"],
        amount_atomic=CENT,
        memo="to itself",
    )
    async with tenant_transaction(get_engine(app_settings.database_url), tenant) as conn:
        row = (await record_payment(conn, new)).row
    req = payment_request(row, wallet["address"], requested_by="alice", decimals=6)
    await start_payment_workflow(client, app_settings.task_queue, req, wallet["name"])
    return str(row["id"])


async def _movements(db_engine, wallet_id: str, asset_name: str = "USDC") -> list[tuple[str, int]]:
    async with db_engine.connect() as conn:
        rows = await conn.execute(
            sa.select(reconcile_movements.c.kind, reconcile_movements.c.amount_atomic)
            .where(reconcile_movements.c.wallet_id == uuid.UUID(wallet_id), reconcile_movements.c.asset == asset_name)
            .order_by(reconcile_movements.c.id)
        )
        return [(r.kind, int(r.amount_atomic)) for r in rows]


async def _sent_outside_paygent(rpc_url: str, token: str, wallet: str, to: str, amount: int) -> str:
    """A token transfer signed by nobody at Paygent: anvil impersonates the wallet's address."""
    w3 = async_web3(rpc_url)
    await w3.provider.make_request("anvil_impersonateAccount", [wallet])
    try:
        tx = await w3.eth.send_transaction({"from": wallet, "to": token, "data": transfer_calldata(to, amount)})
        assert (await w3.eth.wait_for_transaction_receipt(tx))["status"] == 1
    finally:
        await w3.provider.make_request("anvil_stopImpersonatingAccount", [wallet])
    return "0x" + bytes(tx).hex().removeprefix("0x")


async def _figures(http, dev, wallet_id: str) -> tuple[int, int, int]:
    usdc = asset(await reconciliation(http, dev, wallet_id), "USDC")
    return usdc["checkpoint_block"], int(usdc["ledger_balance_atomic"]), int(usdc["chain_balance_atomic"])


async def test_a_payment_to_the_wallets_own_address_reads_ledger_equal_chain(
    http, dev, db_engine, temporal_env, app_settings
):
    wallet = await funded_wallet(http, dev, app_settings, 50)
    await reconcile_until(
        temporal_env.client,
        app_settings.task_queue,
        lambda: ledger_equals_chain(http, dev, wallet["id"]),
        what="funded",
    )
    pid = await _self_payment(temporal_env.client, app_settings, dev, wallet)
    paid = await wait_final(http, dev, pid)
    assert paid["status"] == "confirmed" and paid["to"] == wallet["address"], paid
    await reconcile_until(
        temporal_env.client,
        app_settings.task_queue,
        lambda: ledger_equals_chain(http, dev, wallet["id"], paid["block_number"]),
        what="self-payment reconciled",
    )
    view = await reconciliation(http, dev, wallet["id"])
    block, ledger, chain = await _figures(http, dev, wallet["id"])
    print(f"\nself-payment of {CENT} atomic at block {paid['block_number']}: ledger {ledger} chain {chain} at {block}")
    assert ledger == chain == 50 * 10**6 and view["mismatches"] == []
    # the one Transfer log is the payment out and its funds back in; the ledger booked the payment once
    assert (await _movements(db_engine, wallet["id"]))[-2:] == [("payment", -CENT), ("self_credit", CENT)]
    assert "reconciliation.mismatch" not in await audit_actions(db_engine, "wallet", wallet["id"])


async def test_transfers_outside_paygent_end_equal_or_as_a_mismatch_naming_why(
    http, dev, db_engine, temporal_env, app_settings, webhook
):
    wallet = await funded_wallet(http, dev, app_settings, 50)  # minted from outside: a deposit
    await reconcile_until(
        temporal_env.client,
        app_settings.task_queue,
        lambda: ledger_equals_chain(http, dev, wallet["id"]),
        what="funded",
    )
    rpc, token = app_settings.rpc_url, app_settings.token_address

    # to itself, outside Paygent: nothing moved, nothing is booked (its gas is another matter, below)
    await _sent_outside_paygent(rpc, token, wallet["address"], wallet["address"], CENT)
    head = await async_web3(rpc).eth.block_number
    await reconcile_until(
        temporal_env.client,
        app_settings.task_queue,
        lambda: ledger_equals_chain(http, dev, wallet["id"], head),
        what="self-transfer outside Paygent",
    )
    block, ledger, chain = await _figures(http, dev, wallet["id"])
    print(f"\nself-transfer outside Paygent: ledger {ledger} chain {chain} at {block}")
    view = await reconciliation(http, dev, wallet["id"])
    assert ledger == chain and not [m for m in view["mismatches"] if m["asset"] == "USDC"]
    gas = [m for m in view["mismatches"] if m["asset"] == "ETH"]  # the gas it burned: no payment sent it
    assert [m["cause"] for m in gas] == ["unexplained_decrease"] and int(gas[0]["amount_atomic"]) < 0

    # out to someone, outside Paygent: an open mismatch naming the transfer
    to = "0x" + uuid.uuid4().hex + "00000000"
    tx = await _sent_outside_paygent(rpc, token, wallet["address"], to_checksum_address(to), 3 * CENT)

    async def opened() -> bool:
        found = (await reconciliation(http, dev, wallet["id"]))["mismatches"]
        return any(m["tx_hash"] == tx for m in found)

    await reconcile_until(temporal_env.client, app_settings.task_queue, opened, what="transfer out found")
    block, ledger, chain = await _figures(http, dev, wallet["id"])
    stray = next(m for m in (await reconciliation(http, dev, wallet["id"]))["mismatches"] if m["tx_hash"] == tx)
    print(f"transfer out outside Paygent: ledger {ledger} chain {chain} at {block}: {stray['cause']}")
    assert (stray["cause"], int(stray["amount_atomic"])) == ("transfer_out_without_payment", -3 * CENT)
    assert chain - ledger == -3 * CENT and stray["counterparty"] == to_checksum_address(to)
    assert (await reconcile_once(temporal_env.client, app_settings.task_queue)).mismatches == 0  # recorded once
    assert [e["data"]["mismatch_id"] for e in webhook.of_type("reconciliation.mismatch")].count(stray["id"]) == 1


async def _balance_slot(w3: AsyncWeb3, token: str, holder: str) -> int:
    """The storage slot of `balanceOf[holder]` in the token (vyper's HashMap layout, found by reading it back)."""
    balance = await balance_of(w3, token, holder)
    key = bytes.fromhex(holder.removeprefix("0x").rjust(64, "0"))
    for index in range(16):
        base = index.to_bytes(32, "big")
        for slot in (keccak(base + key), keccak(key + base)):
            if int.from_bytes(await w3.eth.get_storage_at(to_checksum_address(token), slot), "big") == balance:
                return int.from_bytes(slot, "big")
    raise AssertionError("balanceOf's slot not found")


async def _set_balance(w3: AsyncWeb3, token: str, slot: int, value: int) -> None:
    await w3.provider.make_request("anvil_setStorageAt", [token, hex(slot), "0x" + value.to_bytes(32, "big").hex()])
    await w3.provider.make_request("evm_mine", [])  # the scan reads balances at new blocks only


async def _open_gauge(http, cause: str) -> float:
    text = (await http.get("/metrics")).text
    found = re.search(rf'^paygent_reconcile_mismatches_open{{asset="USDC",cause="{cause}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_balance_change_with_no_transfer_is_a_mismatch_until_it_resolves(
    http, dev, db_engine, temporal_env, app_settings, webhook
):
    """Whatever its cause (here the token's storage rewritten: no log at all), a difference is a mismatch: one
    row, one audit row, one webhook event, counted in /metrics; when the balances agree again it resolves."""
    wallet = await funded_wallet(http, dev, app_settings, 50)
    await reconcile_until(
        temporal_env.client,
        app_settings.task_queue,
        lambda: ledger_equals_chain(http, dev, wallet["id"]),
        what="funded",
    )
    w3, token = async_web3(app_settings.rpc_url), app_settings.token_address
    slot, gauge = await _balance_slot(w3, token, wallet["address"]), await _open_gauge(http, "unexplained")
    await _set_balance(w3, token, slot, 50 * 10**6 - 7 * CENT)

    async def mismatched() -> bool:
        return bool((await reconciliation(http, dev, wallet["id"]))["mismatches"])

    await reconcile_until(temporal_env.client, app_settings.task_queue, mismatched, what="balance changed")
    [found] = (await reconciliation(http, dev, wallet["id"]))["mismatches"]
    block, ledger, chain = await _figures(http, dev, wallet["id"])
    print(f"\nno-log balance change: ledger {ledger} chain {chain} at {block}: {found['cause']}")
    assert (found["cause"], int(found["amount_atomic"]), found["tx_hash"]) == ("unexplained", -7 * CENT, None)
    assert await _open_gauge(http, "unexplained") == gauge + 1
    await reconcile_once(temporal_env.client, app_settings.task_queue)  # another tick: nothing new
    assert (await reconciliation(http, dev, wallet["id"]))["mismatches"] == [found]
    assert (await audit_actions(db_engine, "wallet", wallet["id"])).count("reconciliation.mismatch") == 1

    await _set_balance(w3, token, slot, 50 * 10**6)

    async def resolved() -> bool:
        return not (await reconciliation(http, dev, wallet["id"]))["mismatches"]

    await reconcile_until(temporal_env.client, app_settings.task_queue, resolved, what="balance restored")
    view = await reconciliation(http, dev, wallet["id"])
    assert [m["id"] for m in view["resolved_mismatches"]] == [found["id"]]
    assert await ledger_equals_chain(http, dev, wallet["id"])
    actions = await audit_actions(db_engine, "wallet", wallet["id"])
    assert actions.count("reconciliation.mismatch") == 1 and actions.count("reconciliation.mismatch_resolved") == 1
    assert await _open_gauge(http, "unexplained") == gauge
    for kind in ("reconciliation.mismatch", "reconciliation.mismatch_resolved"):
        assert [e["data"]["mismatch_id"] for e in webhook.of_type(kind)].count(found["id"]) == 1
