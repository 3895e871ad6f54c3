"""The reconciler's figures: blocks scanned per second, and how many wallets one tick keeps up with.

    .venv/bin/python -m benchmarks.reconcile --wallets 40 --history-blocks 20000 --new-blocks 8

Self-contained (it does not touch `paygent stack up`): a private anvil, a scratch Postgres database, a Temporal
dev server in memory and the real worker. It mines a history (empty blocks plus a deposit to every wallet
scattered through it), then runs `ReconcileWorkflow` as the schedule would:
1. cold: every wallet from block 0 to the head (the first tick after the reconciler is deployed);
2. steady: `--new-blocks` new blocks per tick (8 is a 15 s tick on a 2 s chain), several ticks.
Wallet-blocks per second = wallets x blocks scanned / run time. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from paygent import search_attributes
from paygent.chain.anvil import dev_account, start_anvil
from paygent.chain.rpc import async_web3
from paygent.chain.token import deploy_token, mint
from paygent.crypto import new_master_key
from paygent.db import accounts
from paygent.db.engine import async_url, get_engine
from paygent.db.migrate import upgrade
from paygent.netutil import free_port
from paygent.paths import temporal_cli
from paygent.settings import Settings
from workers.main import build_worker
from workflows import reconcile_types as r

ADMIN_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def admin(sql: str) -> None:
    engine = create_async_engine(async_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(sa.text(sql))
    await engine.dispose()


async def tick(env: WorkflowEnvironment, queue: str) -> tuple[r.ReconcileResult, float]:
    started = time.perf_counter()
    result = await env.client.execute_workflow(
        r.WORKFLOW_NAME,
        r.ReconcileInput(),
        id=f"bench-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
        result_type=r.ReconcileResult,
    )
    return result, time.perf_counter() - started


async def main(wallets: int, history_blocks: int, new_blocks: int, ticks: int, batch: int) -> None:
    port, db = free_port(), f"paygent_bench_{uuid.uuid4().hex[:8]}"
    anvil = start_anvil(port)
    await admin(f'CREATE DATABASE "{db}"')
    database_url = f"{async_url(ADMIN_URL).rsplit('/', 1)[0]}/{db}"
    env = None
    try:
        await asyncio.to_thread(upgrade, database_url)
        rpc = f"http://127.0.0.1:{port}"
        w3 = async_web3(rpc, request_kwargs={"timeout": 300})  # anvil_mine is slow
        token = await deploy_token(w3, dev_account(0), "Paygent USD", "USDC")
        master = new_master_key()
        settings = Settings(
            database_url=database_url,
            rpc_url=rpc,
            token_address=token,
            master_key=master,
            task_queue="bench",
            confirmations=1,
            reconcile_batch_blocks=batch,
        )
        engine = get_engine(database_url)
        addresses = []
        async with engine.begin() as conn:
            tenant = await accounts.ensure_tenant(conn, "bench")
            for i in range(wallets):
                addresses.append((await accounts.create_wallet(conn, tenant, f"w{i}", settings.master_key_bytes()))[1])
        per_gap = max(history_blocks // max(wallets, 1), 1)
        for address in addresses:  # one deposit per wallet, spread over the history
            for chunk in range(0, per_gap, 1_000):  # anvil mines a large batch slowly: ask in chunks
                await w3.provider.make_request("anvil_mine", [hex(min(1_000, per_gap - chunk))])
            await mint(w3, token, dev_account(0), address, 10**6)
        head = await w3.eth.block_number
        print(f"history: {head + 1} blocks, {wallets} wallets, one deposit each", flush=True)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(temporal_cli()),
            data_converter=pydantic_data_converter,
            search_attributes=search_attributes.ALL,
            dev_server_extra_args=["--log-level", "error"],
        )
        async with build_worker(env.client, settings, engine):
            cold, seconds = await tick(env, "bench")
            print(
                f"cold: {wallets} wallets x {head + 1} blocks = {cold.blocks_scanned} wallet-blocks in "
                f"{seconds:.2f} s -> {cold.blocks_scanned / seconds:,.0f} wallet-blocks/s (batch {batch}); "
                f"{cold.mismatches} mismatches"
            )
            times = []
            for _ in range(ticks):
                await w3.provider.make_request("anvil_mine", [hex(new_blocks)])
                steady, seconds = await tick(env, "bench")
                times.append(seconds)
            mean = sum(times) / len(times)
            print(
                f"steady: {wallets} wallets x {new_blocks} new blocks per tick: mean {mean:.2f} s, "
                f"max {max(times):.2f} s over {ticks} ticks -> {wallets / mean:.1f} wallets/s; a 15 s tick keeps "
                f"up with about {int(wallets * 15 / mean):,} wallets at {new_blocks} blocks per tick"
            )
        await engine.dispose()
    finally:
        if env is not None:
            await env.shutdown()
        anvil.kill()
        anvil.wait()
        await admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wallets", type=int, default=40)
    parser.add_argument("--history-blocks", type=int, default=20_000)
    parser.add_argument("--new-blocks", type=int, default=8)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args()
    asyncio.run(main(args.wallets, args.history_blocks, args.new_blocks, args.ticks, args.batch))
    os._exit(0)  # temporalio/sdk-python#300: the client can crash at interpreter exit
