"""Shared steps of the reorg tests: a worker and API of their own (own task queue and confirmation depth), manual
mining, a payment brought to a stage, a rollback, and the checks the issue asks for after it."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager

import sqlalchemy as sa

from paygent.chain.rpc import async_web3
from paygent.db.engine import get_engine
from paygent.db.receipt_waits import receipt_waits
from paygent.db.schema import payments
from tests.api.helpers import create, serve_api, wait_final
from tests.reconcile.conftest import reconcile_once
from tests.reconcile.helpers import reconciliation
from workers.main import build_worker


async def until(predicate, timeout: float, what: str, pause: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := await predicate():
            return value
        await asyncio.sleep(pause)
    raise AssertionError(f"not within {timeout}s: {what}")


@asynccontextmanager
async def reorg_stack(app_settings, temporal_env, depth: int, *, automine: bool = False):
    """Worker + API with confirmation depth `depth`, automine off unless asked (the test mines); yields
    (settings, api, w3)."""
    settings = app_settings.model_copy(
        update={
            "task_queue": f"reorg-{uuid.uuid4().hex[:6]}",
            "confirmations": depth,
            "replace_after_seconds": 3600,
            "reconcile_interval_seconds": 3600,  # the test runs the reconcile ticks itself
        }
    )
    w3 = async_web3(settings.rpc_url)
    await w3.provider.make_request("evm_setAutomine", [automine])
    try:
        async with build_worker(temporal_env.client, settings, get_engine(settings.database_url)):
            async with serve_api(settings, temporal_env.client) as api:
                yield settings, api, w3
    finally:
        await w3.provider.make_request("evm_setAutomine", [True])
        await w3.provider.make_request("evm_mine", [])


async def mine(w3, blocks: int) -> None:
    for _ in range(blocks):
        await w3.provider.make_request("evm_mine", [])


async def in_pool(w3, tx_hash: str) -> bool:
    return tx_hash.lower() in str(await w3.provider.make_request("txpool_content", [])).lower()


async def row(db_engine, pid: str):
    async with db_engine.connect() as conn:
        return (await conn.execute(sa.select(payments).where(payments.c.id == uuid.UUID(pid)))).mappings().first()


async def pay_and_mine(api, dev, db_engine, w3, wallet_id: str, to: str, amount: str = "1.25") -> tuple[str, str, int]:
    """A transfer signed, registered, then mined in one block: (payment id, tx hash, block)."""
    body = {"wallet_id": wallet_id, "to": to, "amount": amount, "asset": "USDC", "memo": "reorg"}
    r = await create(api, dev, body)
    assert r.status_code == 202, r.text
    pid = r.json()["id"]

    async def registered() -> bool:
        async with db_engine.connect() as conn:
            q = sa.select(sa.func.count()).where(receipt_waits.c.payment_id == uuid.UUID(pid))
            return await conn.scalar(q) == 1

    await until(registered, 60, "the receipt wait registered")
    tx_hash = (await row(db_engine, pid))["tx_hash"]
    await until(lambda: in_pool(w3, tx_hash), 30, "the transaction in the pool")
    await mine(w3, 1)
    receipt = await w3.eth.get_transaction_receipt(tx_hash)
    return pid, tx_hash, int(receipt["blockNumber"])


async def confirm(api, dev, w3, pid: str, depth: int) -> dict:
    await mine(w3, depth - 1)
    final = await wait_final(api, dev, pid, timeout=60)
    assert final["status"] == "confirmed", final
    return final


async def settle(http, dev, temporal_env, task_queue: str, wallet_id: str, block: int) -> None:
    """Reconcile ticks until the wallet's checkpoint has passed `block` with ledger == chain there."""

    async def scanned() -> bool:
        await reconcile_once(temporal_env.client, task_queue)
        view = await reconciliation(http, dev, wallet_id)
        usdc = [a for a in view["assets"] if a["asset"] == "USDC"]
        return bool(usdc) and usdc[0]["checkpoint_block"] >= block and usdc[0]["difference_atomic"] == "0"

    await until(scanned, 60, "the reconciler settled it", pause=0.2)


async def ledger_or_mismatch(http, dev, temporal_env, task_queue: str, wallet_id: str, pid: str, w3, depth: int) -> str:
    """After a rollback: ledger == chain at the (safe) head, or an open mismatch naming the payment. Says which.
    A block is mined per try, so whatever a reorg sent again (this payment's or an earlier one's) lands."""
    outcome, view = "", {}

    async def judged() -> bool:
        nonlocal outcome, view
        await mine(w3, 1)
        head = int(await w3.eth.block_number)
        await reconcile_once(temporal_env.client, task_queue)
        view = await reconciliation(http, dev, wallet_id)
        usdc = [a for a in view["assets"] if a["asset"] == "USDC"][0]
        named = [m for m in view["mismatches"] if m["payment_id"] == pid]
        if named:
            outcome = f"open mismatch {named[0]['cause']} naming the payment"
            return True
        if usdc["difference_atomic"] == "0" and usdc["checkpoint_block"] >= head - depth + 1:
            outcome = "ledger == chain at the safe head"
            return True
        return False

    try:
        await until(judged, 60, "ledger == chain, or a mismatch naming the payment", pause=0.2)
    except AssertionError as err:
        raise AssertionError(f"{err}; last reconciliation {view}") from None
    return outcome
