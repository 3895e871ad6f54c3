"""The worker SIGKILLed at each step of a payment, then restarted: it completes with exactly one transfer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from paygent.chain.rpc import async_web3
from paygent.db.schema import address_nonces, ledger_entries, payment_transactions, payments
from tests.api.helpers import create, new_recipient, payment_body, serve_api, token_balance, transfers_to, wait_final
from tests.api.rpc_proxy import RpcProxy


def _worker_process(settings, **extra_env: str) -> subprocess.Popen:
    """`python -m workers.main` in its own process (and process group, as if on its own host), configured only
    through the environment; `extra_env` adds or overrides variables (e.g. PAYGENT_WORKER_ACTIVITY_SLOTS)."""
    env = {
        **os.environ,
        "PAYGENT_DATABASE_URL": settings.database_url,
        "PAYGENT_REDIS_URL": settings.redis_url,
        "PAYGENT_TEMPORAL_ADDRESS": settings.temporal_address,
        "PAYGENT_TASK_QUEUE": settings.task_queue,
        "PAYGENT_RPC_URL": settings.rpc_url,
        "PAYGENT_TOKEN_ADDRESS": settings.token_address,
        "PAYGENT_MASTER_KEY": settings.master_key.get_secret_value(),
        "PAYGENT_LOG_LEVEL": "WARNING",
        "PAYGENT_WORKER_METRICS_ADDRESS": "",
        "PAYGENT_RECONCILE_INTERVAL_SECONDS": str(settings.reconcile_interval_seconds),
        **extra_env,
    }  # a stack beside the tests holds the default metrics port
    return subprocess.Popen([sys.executable, "-m", "workers.main"], env=env, start_new_session=True)


async def _wait_row(db_engine, payment_id: str, predicate, timeout: float = 30):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        async with db_engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(payments).where(payments.c.id == uuid.UUID(payment_id))))
                .mappings()
                .first()
            )
        if row is not None and predicate(row):
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"payment {payment_id} never reached the expected state")


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# every step with regular activities; with local steps (off by default) the step where signing and its record
# meet, which is where a local activity's crash differs (kept to one case: each costs a worker restart)
@pytest.mark.parametrize(
    ("step", "local_steps"),
    [
        *((step, False) for step in ("before_signing", "after_signing", "after_broadcast", "after_receipt")),
        ("after_signing", True),
    ],
    ids=lambda v: v if isinstance(v, str) else ("local_steps" if v else "activities"),
)
async def test_sigkill_at_each_step_then_restart_pays_exactly_once(
    step, local_steps, app_settings, temporal_env, dev, db_engine
):
    # A task queue no in-process worker serves: only the subprocess workers below run this payment. With
    # `local_steps` the API starts it with its short steps as local activities (PAYGENT_LOCAL_STEPS).
    settings = app_settings.model_copy(
        update={"task_queue": f"crash-{uuid.uuid4().hex[:6]}", "local_steps": local_steps}
    )
    w3 = async_web3(settings.rpc_url)
    to = new_recipient()
    treasury_id = uuid.UUID(dev["wallets"]["treasury"]["id"])
    procs: list[subprocess.Popen] = []
    async with RpcProxy(settings.rpc_url) as proxy:
        worker_settings = settings.model_copy(update={"rpc_url": proxy.url})
        procs.append(_worker_process(worker_settings))
        try:
            async with serve_api(settings, temporal_env.client) as http:
                if step == "before_signing":
                    async with db_engine.begin() as conn:  # the wallet's nonce row, so that it can be held
                        await conn.execute(
                            pg_insert(address_nonces)
                            .values(
                                chain_id=settings.chain_id, address=dev["wallets"]["treasury"]["address"], next_nonce=0
                            )
                            .on_conflict_do_nothing()
                        )
                    async with db_engine.connect() as conn:  # hold it: signing waits for its nonce, unsigned
                        txn = await conn.begin()
                        await conn.execute(
                            sa.select(address_nonces.c.next_nonce)
                            .where(
                                address_nonces.c.chain_id == settings.chain_id,
                                address_nonces.c.address == dev["wallets"]["treasury"]["address"],
                            )
                            .with_for_update()
                        )
                        pid = (await create(http, dev, payment_body(dev, to, "7.25"))).json()["id"]
                        await asyncio.sleep(1.5)
                        row = await _wait_row(db_engine, pid, lambda p: True)
                        assert row["signed_tx"] is None
                        _kill(procs[0])
                        await txn.rollback()
                elif step == "after_signing":
                    proxy.hold_sends()  # the signed bytes are stored, the node never gets them
                    pid = (await create(http, dev, payment_body(dev, to, "7.25"))).json()["id"]
                    await _wait_row(db_engine, pid, lambda p: p["signed_tx"] is not None)
                    while proxy.held == 0:
                        await asyncio.sleep(0.05)
                    _kill(procs[0])
                    proxy.release_sends()
                elif step == "after_broadcast":
                    await w3.provider.make_request("evm_setAutomine", [False])
                    pid = (await create(http, dev, payment_body(dev, to, "7.25"))).json()["id"]
                    await _wait_row(db_engine, pid, lambda p: p["status"] == "submitted")
                    _kill(procs[0])
                    await w3.provider.make_request("evm_setAutomine", [True])
                    await w3.provider.make_request("evm_mine", [])
                else:  # after_receipt: mined, but the ledger is not written yet
                    await w3.provider.make_request("evm_setAutomine", [False])
                    pid = (await create(http, dev, payment_body(dev, to, "7.25"))).json()["id"]
                    row = await _wait_row(db_engine, pid, lambda p: p["status"] == "submitted")
                    async with db_engine.connect() as conn:  # hold the payment row: settling waits on it
                        txn = await conn.begin()
                        await conn.execute(
                            sa.select(payments.c.id).where(payments.c.id == uuid.UUID(pid)).with_for_update()
                        )
                        await w3.provider.make_request("evm_setAutomine", [True])
                        await w3.provider.make_request("evm_mine", [])
                        assert (await w3.eth.get_transaction_receipt(row["tx_hash"]))["status"] == 1
                        await asyncio.sleep(1.0)
                        _kill(procs[0])
                        await txn.rollback()
                    assert (await _wait_row(db_engine, pid, lambda p: True))["status"] == "submitted"
                procs.append(_worker_process(worker_settings))
                final = await wait_final(http, dev, pid, timeout=120)
        finally:
            await w3.provider.make_request("evm_setAutomine", [True])
            for proc in procs:
                if proc.poll() is None:
                    _kill(proc)
    assert final["status"] == "confirmed", final
    assert await transfers_to(settings.rpc_url, settings.token_address, to) == 1
    assert await token_balance(settings.rpc_url, settings.token_address, to) == 7_250_000
    async with db_engine.connect() as conn:
        ledger = dict(
            (
                await conn.execute(
                    sa.select(ledger_entries.c.account, ledger_entries.c.amount_atomic).where(
                        ledger_entries.c.payment_id == uuid.UUID(pid)
                    )
                )
            ).all()
        )
        attempts = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(payment_transactions)
            .where(payment_transactions.c.payment_id == uuid.UUID(pid))
        )
    assert ledger == {f"wallet:{treasury_id}": -7_250_000, f"external:{to}": 7_250_000}  # agrees with the chain
    assert attempts == 1  # signed once, whatever the crash
