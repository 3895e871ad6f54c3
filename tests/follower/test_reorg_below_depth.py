"""A reorg below the confirmation depth, as a property over every depth it can have: with depth N, a transfer
mined and then rolled back at 1..N-1 blocks is sent again (the same signed bytes) and confirms exactly once.
While it waits, the payment's API answer says how many confirmations it has."""

from __future__ import annotations

import asyncio
import time
import uuid

import sqlalchemy as sa

from paygent.chain.rpc import async_web3
from paygent.db.engine import get_engine
from paygent.db.receipt_waits import receipt_waits
from paygent.db.schema import payments
from tests.api.helpers import auth, create, funded_wallet, new_recipient, serve_api, transfers_to, wait_final
from workers.main import build_worker

DEPTH = 3  # the dev chain's depth for this test: rollbacks of 1 and 2 blocks are below it


async def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := await predicate():
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


async def test_every_reorg_below_the_depth_resends_the_same_bytes_and_confirms_once(
    app_settings, temporal_env, dev, db_engine, http
):
    settings = app_settings.model_copy(
        update={
            "task_queue": f"reorg-{uuid.uuid4().hex[:6]}",
            # the depth of this chain only (PAYGENT_CONFIRMATIONS_BY_CHAIN); every other chain keeps the default 1
            "confirmations": 1,
            "confirmations_by_chain": {app_settings.chain_id: DEPTH},
            "replace_after_seconds": 3600,
        }
    )
    wallet = await funded_wallet(http, dev, settings, 10)
    w3 = async_web3(settings.rpc_url)
    outcomes: dict[int, str] = {}
    await w3.provider.make_request("evm_setAutomine", [False])
    try:
        async with build_worker(temporal_env.client, settings, get_engine(settings.database_url)):
            async with serve_api(settings, temporal_env.client) as api:
                for rolled in range(1, DEPTH):  # every depth below N
                    to = new_recipient()
                    body = {"wallet_id": wallet["id"], "to": to, "amount": "1.25", "asset": "USDC", "memo": "reorg"}
                    pid = (await create(api, dev, body)).json()["id"]

                    async def registered(pid=pid) -> bool:
                        q = sa.select(sa.func.count()).where(receipt_waits.c.payment_id == uuid.UUID(pid))
                        async with db_engine.connect() as conn:
                            return await conn.scalar(q) == 1

                    await _until(registered, 60, "the wait registered")
                    async with db_engine.connect() as conn:
                        tx_hash = await conn.scalar(
                            sa.select(payments.c.tx_hash).where(payments.c.id == uuid.UUID(pid))
                        )
                    seen = (await api.get(f"/v1/payments/{pid}", headers=auth(dev))).json()
                    assert (seen["status"], seen["confirmations"], seen["confirmations_required"]) == (
                        "submitted",
                        0,
                        DEPTH,
                    )
                    for _ in range(rolled):
                        await w3.provider.make_request("evm_mine", [])
                    seen = (await api.get(f"/v1/payments/{pid}", headers=auth(dev))).json()
                    assert (seen["status"], seen["confirmations"]) == ("submitted", rolled), seen
                    await asyncio.sleep(1.0)  # the follower has seen it mined, `rolled` deep
                    await w3.provider.make_request("anvil_rollback", [rolled])  # its block is gone

                    async def resent(tx_hash=tx_hash) -> bool:
                        pool = await w3.provider.make_request("txpool_content", [])
                        return tx_hash.lower() in str(pool).lower()

                    await _until(resent, 30, "the same bytes sent again")
                    for _ in range(DEPTH):
                        await w3.provider.make_request("evm_mine", [])
                    final = await wait_final(api, dev, pid, timeout=60)
                    assert final["status"] == "confirmed" and final["tx_hash"] == tx_hash  # the same transaction
                    assert await transfers_to(settings.rpc_url, settings.token_address, to) == 1
                    outcomes[rolled] = "re-sent, confirmed once"
    finally:
        await w3.provider.make_request("evm_setAutomine", [True])
    print(f"\nreorg below depth {DEPTH}: " + "; ".join(f"{d} block(s) -> {o}" for d, o in outcomes.items()))
    assert sorted(outcomes) == list(range(1, DEPTH))
