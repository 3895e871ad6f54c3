"""The worker SIGKILLed while a payment is in flight, then restarted: the payment completes, one transfer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager

import httpx
import sqlalchemy as sa
import uvicorn
from web3 import AsyncWeb3

from api.app import create_app
from paygent.db.schema import payments
from paygent.netutil import free_port
from tests.api.helpers import create, new_recipient, payment_body, token_balance, transfers_to, wait_final


def _worker_process(settings) -> subprocess.Popen:
    """`python -m workers.main` in its own process, configured only through the environment."""
    env = {**os.environ,
           "PAYGENT_DATABASE_URL": settings.database_url, "PAYGENT_REDIS_URL": settings.redis_url,
           "PAYGENT_TEMPORAL_ADDRESS": settings.temporal_address, "PAYGENT_TASK_QUEUE": settings.task_queue,
           "PAYGENT_RPC_URL": settings.rpc_url, "PAYGENT_TOKEN_ADDRESS": settings.token_address,
           "PAYGENT_MASTER_KEY": settings.master_key.get_secret_value(), "PAYGENT_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "workers.main"], env=env, start_new_session=True)


@asynccontextmanager
async def _api(settings, client):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, temporal=client), host="127.0.0.1", port=port,
                                           log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield http
    finally:
        server.should_exit = True
        await task


async def _wait_row(db_engine, payment_id: str, predicate, timeout: float = 30):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        async with db_engine.connect() as conn:
            row = (await conn.execute(sa.select(payments).where(payments.c.id == uuid.UUID(payment_id)))).mappings().first()
        if row is not None and predicate(row):
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"payment {payment_id} never reached the expected state")


async def test_sigkill_while_awaiting_the_receipt(app_settings, temporal_env, dev, db_engine):
    # A task queue no in-process worker serves: only the subprocess workers below run this payment.
    settings = app_settings.model_copy(update={"task_queue": f"crash-{uuid.uuid4().hex[:6]}"})
    w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(settings.rpc_url))
    to = new_recipient()
    await w3.provider.make_request("evm_setAutomine", [False])  # hold the tx in the mempool
    first = _worker_process(settings)
    second = None
    try:
        async with _api(settings, temporal_env.client) as http:
            r = await create(http, dev, payment_body(dev, to, "7.25"))
            assert r.status_code == 202, r.text
            pid = r.json()["id"]
            row = await _wait_row(db_engine, pid, lambda p: p["status"] == "submitted")
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
            assert await transfers_to(settings.rpc_url, settings.token_address, to) == 0

            second = _worker_process(settings)
            await w3.provider.make_request("evm_setAutomine", [True])
            await w3.provider.make_request("evm_mine", [])
            final = await wait_final(http, dev, pid, timeout=90)
        assert final["status"] == "confirmed"
        assert final["tx_hash"] == row["tx_hash"]  # the one transaction signed before the crash
        assert await transfers_to(settings.rpc_url, settings.token_address, to) == 1
        assert await token_balance(settings.rpc_url, settings.token_address, to) == 7_250_000
    finally:
        await w3.provider.make_request("evm_setAutomine", [True])
        for proc in (first, second):
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
