"""Stuck transactions are replaced with the same nonce and higher fees; a reorg re-sends the same bytes.

Each test runs its own worker (own task queue, tuned settings) and API on the session's services.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager

import sqlalchemy as sa

from paygent.chain.rpc import async_web3
from paygent.db.engine import get_engine
from paygent.db.schema import payment_transactions
from tests.api.helpers import create, new_recipient, payment_body, serve_api, token_balance, transfers_to, wait_final
from tests.api.test_worker_crash import _wait_row
from workers.main import build_worker


@asynccontextmanager
async def _tuned_stack(app_settings, temporal_env, **overrides):
    settings = app_settings.model_copy(update={"task_queue": f"tuned-{uuid.uuid4().hex[:6]}", **overrides})
    async with build_worker(temporal_env.client, settings, get_engine(settings.database_url)):
        async with serve_api(settings, temporal_env.client) as http:
            yield http


@asynccontextmanager
async def _manual_mining(rpc_url: str):
    w3 = async_web3(rpc_url)
    await w3.provider.make_request("evm_setAutomine", [False])
    try:
        yield w3
    finally:
        await w3.provider.make_request("evm_setAutomine", [True])
        await w3.provider.make_request("evm_mine", [])


async def test_stuck_transaction_is_replaced_and_only_one_lands(app_settings, temporal_env, dev, db_engine):
    to = new_recipient()
    async with _tuned_stack(app_settings, temporal_env, replace_after_seconds=1) as http:
        async with _manual_mining(app_settings.rpc_url) as w3:
            pid = (await create(http, dev, payment_body(dev, to, "4"))).json()["id"]
            first = await _wait_row(db_engine, pid, lambda p: p["status"] == "submitted")

            async def attempts():
                async with db_engine.connect() as conn:
                    return (
                        (
                            await conn.execute(
                                sa.select(payment_transactions)
                                .where(payment_transactions.c.payment_id == uuid.UUID(pid))
                                .order_by(payment_transactions.c.created_at)
                            )
                        )
                        .mappings()
                        .all()
                    )

            await _wait_row(db_engine, pid, lambda p: p["tx_hash"] != first["tx_hash"], timeout=20)
            rows = await attempts()
            assert len(rows) >= 2 and len({r["nonce"] for r in rows}) == 1
            assert rows[1]["max_fee_per_gas"] * 10 >= rows[0]["max_fee_per_gas"] * 11  # at least +10%
            await w3.provider.make_request("evm_mine", [])
        final = await wait_final(http, dev, pid)
    assert final["status"] == "confirmed"
    assert final["tx_hash"] in {r["tx_hash"] for r in rows} and final["tx_hash"] != rows[0]["tx_hash"]
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 1
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 4_000_000


async def test_reorg_that_drops_the_transaction_resends_the_same_one(app_settings, temporal_env, dev, db_engine):
    to = new_recipient()
    async with _tuned_stack(app_settings, temporal_env, confirmations=3, replace_after_seconds=3600) as http:
        async with _manual_mining(app_settings.rpc_url) as w3:
            pid = (await create(http, dev, payment_body(dev, to, "6"))).json()["id"]
            row = await _wait_row(db_engine, pid, lambda p: p["status"] == "submitted")
            await w3.provider.make_request("evm_mine", [])
            assert (await w3.eth.get_transaction_receipt(row["tx_hash"]))["status"] == 1
            await w3.provider.make_request("anvil_rollback", [1])  # the block with our transfer is gone
            assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 0
            # the worker re-sends the same signed bytes; mine them deep enough
            for _ in range(60):
                pending = await w3.provider.make_request("txpool_content", [])
                if row["tx_hash"].lower() in str(pending).lower():
                    break
                await asyncio.sleep(0.1)
            for _ in range(3):
                await w3.provider.make_request("evm_mine", [])
        final = await wait_final(http, dev, pid)
    assert final["status"] == "confirmed" and final["tx_hash"] == row["tx_hash"]
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 1
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 6_000_000
