"""Three worker processes, each in its own process group (as if on three hosts), on one task queue, with 200
payments in flight: SIGKILL one worker, then the one running the chain follower, while the payments run. Every
payment confirms once, the chain holds exactly 200 Transfer logs to the recipient, the ledger equals the chain,
every payment's receipt is the one on chain, and the follower moves to the survivor within the bound that
docs/ARCHITECTURE.md states (heartbeat timeout 10 s + retry 1 s + a task poll; 11.0 s median measured with two
idle workers)."""

from __future__ import annotations

import asyncio
import time
import uuid

import sqlalchemy as sa

from paygent.chain.rpc import async_web3
from paygent.db.receipt_waits import receipt_waits
from paygent.db.schema import ledger_entries, payment_transactions, payments
from tests.api.helpers import create, funded_wallet, new_recipient, serve_api, token_balance, transfers_to
from tests.api.test_worker_crash import _kill, _worker_process
from tests.reconcile.conftest import reconcile_until
from tests.reconcile.helpers import ledger_equals_chain
from tests.scaleout.helpers import follower_pid, until
from workflows import chain_types as ct

IN_FLIGHT = 200
WORKERS = 3
AMOUNT_ATOMIC = 10_000  # 0.01 USDC
# per process, so that three processes' connections stay well within the Postgres the machine's test suites share
# (each process has its own pool: 3 x 30 by default met max_connections = 100 here)
SIZING = {
    "PAYGENT_WORKER_ACTIVITY_SLOTS": "16",
    "PAYGENT_WORKER_LOCAL_ACTIVITY_SLOTS": "8",
    "PAYGENT_DB_POOL_SIZE": "6",
    "PAYGENT_DB_POOL_OVERFLOW": "3",
}
FIRST_KILL_AT, SECOND_KILL_AT = 30, 90  # confirmed payments when each worker is killed
FAILOVER_BOUND = 10 + 1 + 5  # heartbeat timeout + retry interval + a poll and this test's reading (test_follower)


async def _scalar(db_engine, query) -> int:
    async with db_engine.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def test_three_workers_two_sigkilled_while_200_payments_run_each_pays_once(
    app_settings, temporal_env, dev, db_engine, http
):
    settings = app_settings.model_copy(update={"task_queue": f"scale-{uuid.uuid4().hex[:6]}"})
    wallet = await funded_wallet(http, dev, settings, 100)
    wallet_id = uuid.UUID(wallet["id"])
    w3 = async_web3(settings.rpc_url)
    client = temporal_env.client
    chain_wf = ct.workflow_id(settings.chain_id, settings.task_queue)
    of_wallet = payments.c.wallet_id == wallet_id
    confirmed_q = sa.select(sa.func.count()).select_from(payments).where(of_wallet, payments.c.status == "confirmed")
    procs = [_worker_process(settings, **SIZING) for _ in range(WORKERS)]
    to = new_recipient()
    kills: list[dict] = []

    async def confirmed_at_least(n: int):
        return await _scalar(db_engine, confirmed_q) >= n

    async def kill(proc) -> None:
        done = await _scalar(db_engine, confirmed_q)
        posted = await _scalar(db_engine, sa.select(sa.func.count()).select_from(payments).where(of_wallet))
        _kill(proc)
        kills.append({"pid": proc.pid, "confirmed": done, "in_flight": posted - done, "at": time.monotonic()})

    await w3.provider.make_request("evm_setIntervalMining", [1])  # a block a second: every stage runs at once
    started = time.monotonic()
    try:
        async with serve_api(settings, client) as api:
            gate = asyncio.Semaphore(20)

            async def pay(i: int) -> str:
                async with gate:
                    body = {"wallet_id": wallet["id"], "to": to, "amount": "0.01", "asset": "USDC", "memo": f"s{i}"}
                    r = await create(api, dev, body)
                    assert r.status_code == 202, r.text
                    return r.json()["id"]

            posting = asyncio.gather(*(pay(i) for i in range(IN_FLIGHT)))

            await until(lambda: confirmed_at_least(FIRST_KILL_AT), 180, f"{FIRST_KILL_AT} confirmed", pause=0.2)
            following = await until(lambda: follower_pid(client, chain_wf), 30, "the follower running")
            first = next(p for p in procs if p.pid != following)  # a worker that does not run the follower
            await kill(first)

            await until(lambda: confirmed_at_least(SECOND_KILL_AT), 180, f"{SECOND_KILL_AT} confirmed", pause=0.2)
            following = await until(lambda: follower_pid(client, chain_wf), 30, "the follower running")
            victim = next(p for p in procs if p.pid == following)
            survivor = next(p for p in procs if p not in (first, victim))
            await kill(victim)

            async def moved() -> bool:
                return await follower_pid(client, chain_wf) == survivor.pid

            await until(moved, 60, "the follower on the surviving worker", pause=0.05)
            failover = time.monotonic() - kills[-1]["at"]

            ids = [uuid.UUID(pid) for pid in await posting]
            await until(lambda: confirmed_at_least(IN_FLIGHT), 300, f"all {IN_FLIGHT} confirmed", pause=0.5)
            total = time.monotonic() - started
            await reconcile_until(
                client, settings.task_queue, lambda: ledger_equals_chain(api, dev, wallet["id"]), what="ledger == chain"
            )
    finally:
        await w3.provider.make_request("evm_setIntervalMining", [0])
        await w3.provider.make_request("evm_setAutomine", [True])
        for proc in procs:
            if proc.poll() is None:
                _kill(proc)
        try:
            await client.get_workflow_handle(chain_wf).terminate("test over")
        except Exception:
            pass

    async with db_engine.connect() as conn:
        rows = (await conn.execute(sa.select(payments).where(payments.c.id.in_(ids)))).mappings().all()
        ledger = dict(
            (
                await conn.execute(
                    sa.select(ledger_entries.c.account, sa.func.sum(ledger_entries.c.amount_atomic))
                    .where(ledger_entries.c.payment_id.in_(ids))
                    .group_by(ledger_entries.c.account)
                )
            ).all()
        )
        attempts = (
            await conn.execute(
                sa.select(payment_transactions.c.payment_id, sa.func.count())
                .where(payment_transactions.c.payment_id.in_(ids))
                .group_by(payment_transactions.c.payment_id)
            )
        ).all()
        waits_left = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(receipt_waits)
            .where(receipt_waits.c.task_queue == settings.task_queue)
        )
    receipts = await asyncio.gather(*(w3.eth.get_transaction_receipt(r["tx_hash"]) for r in rows))
    logs = await transfers_to(settings.rpc_url, settings.token_address, to)
    print(
        f"\nscale-out: {WORKERS} worker processes, {IN_FLIGHT} payments; SIGKILL pid {kills[0]['pid']} at "
        f"{kills[0]['confirmed']} confirmed ({kills[0]['in_flight']} in flight), then the follower's pid "
        f"{kills[1]['pid']} at {kills[1]['confirmed']} confirmed ({kills[1]['in_flight']} in flight); the follower "
        f"ran on pid {survivor.pid} {failover:.1f}s after the kill; {sum(r['status'] == 'confirmed' for r in rows)} "
        f"confirmed, {logs} Transfer logs, {sum(n > 1 for _, n in attempts)} payments re-signed (fee bump) in "
        f"{total:.1f}s from the first POST"
    )
    assert all(k["in_flight"] > 0 for k in kills)  # the kills hit payments on their way, not an idle fleet
    assert failover <= FAILOVER_BOUND
    assert len(rows) == IN_FLIGHT and {r["status"] for r in rows} == {"confirmed"}
    assert logs == IN_FLIGHT  # exactly one Transfer per payment
    assert await token_balance(settings.rpc_url, settings.token_address, to) == IN_FLIGHT * AMOUNT_ATOMIC
    assert ledger == {f"wallet:{wallet_id}": -IN_FLIGHT * AMOUNT_ATOMIC, f"external:{to}": IN_FLIGHT * AMOUNT_ATOMIC}
    # no receipt missed: each payment's recorded transaction is the one mined, in the block it recorded
    for row, receipt in zip(rows, receipts, strict=True):
        assert receipt["status"] == 1 and receipt["blockNumber"] == row["block_number"], row["id"]
    assert waits_left == 0
