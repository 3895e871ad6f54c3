"""One chain follower per chain answers every payment's receipt wait: waits hold no activity slot, and the
follower moves to a surviving worker when its worker dies (reorgs: tests/follower/test_reorg_below_depth.py)."""

from __future__ import annotations

import asyncio
import time
import uuid

import sqlalchemy as sa
from temporalio.client import WorkflowExecutionStatus

from paygent.chain.rpc import async_web3
from paygent.db.engine import get_engine
from paygent.db.receipt_waits import receipt_waits
from tests.api.helpers import create, funded_wallet, new_recipient, serve_api, transfers_to, wait_final
from tests.api.test_worker_crash import _kill, _worker_process
from tests.reconcile.helpers import assert_replays
from workers.main import build_worker
from workflows import chain_types as ct

IN_FLIGHT = 200
ACTIVITY_SLOTS = 8


async def _count(db_engine, query) -> int:
    async with db_engine.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def _until(predicate, timeout: float, what: str, pause: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(pause)
    raise AssertionError(f"not within {timeout}s: {what}")


async def test_200_waits_in_flight_hold_no_activity_slots(app_settings, temporal_env, dev, db_engine, http):
    """200 payments submitted and waiting at once, on a worker with 8 activity slots: every wait is registered
    (the poller design would need 200 slots), then one follower completes all of them."""
    settings = app_settings.model_copy(update={"task_queue": f"follow-{uuid.uuid4().hex[:6]}"})
    wallet = await funded_wallet(http, dev, settings, 100)
    w3 = async_web3(settings.rpc_url)
    worker = build_worker(
        temporal_env.client, settings, get_engine(settings.database_url), max_concurrent_activities=ACTIVITY_SLOTS
    )
    queue_waits = (
        sa.select(sa.func.count()).select_from(receipt_waits).where(receipt_waits.c.task_queue == settings.task_queue)
    )
    await w3.provider.make_request("evm_setAutomine", [False])  # nothing is mined: every wait stays open
    try:
        async with worker, serve_api(settings, temporal_env.client) as api:
            to = new_recipient()
            sem = asyncio.Semaphore(20)

            async def pay(i: int) -> str:
                async with sem:
                    body = {"wallet_id": wallet["id"], "to": to, "amount": "0.01", "asset": "USDC", "memo": f"n{i}"}
                    r = await create(api, dev, body)
                    assert r.status_code == 202, r.text
                    return r.json()["id"]

            ids = await asyncio.gather(*(pay(i) for i in range(IN_FLIGHT)))
            started = time.monotonic()
            await _until(
                lambda: _all_registered(db_engine, queue_waits),
                timeout=240,
                what=f"{IN_FLIGHT} receipt waits registered",
                pause=0.5,
            )
            registered_after = time.monotonic() - started
            peak = await _count(db_engine, queue_waits)
            mined = time.monotonic()
            for _ in range(5):  # anvil packs about 300 transfers a block
                await w3.provider.make_request("evm_mine", [])

            async def none_left() -> bool:
                return await _count(db_engine, queue_waits) == 0

            await _until(none_left, 180, "every wait answered", pause=0.2)
            answered_after = time.monotonic() - mined
            finals = await asyncio.gather(*(wait_final(api, dev, pid, timeout=180) for pid in ids))
            completed_after = time.monotonic() - mined
            left = await _count(db_engine, queue_waits)
            chain = await temporal_env.client.get_workflow_handle(
                ct.workflow_id(settings.chain_id, settings.task_queue)
            ).describe()
    finally:
        await w3.provider.make_request("evm_setAutomine", [True])
    print(
        f"\nfollower load: {IN_FLIGHT} payments in flight on {ACTIVITY_SLOTS} activity slots; "
        f"{peak} receipt waits registered at once ({registered_after:.1f}s after the last 202); "
        f"the follower answered every wait {answered_after:.1f}s after mining; all {IN_FLIGHT} confirmed (settled "
        f"through the {ACTIVITY_SLOTS} slots) {completed_after:.1f}s after mining; {left} waits left"
    )
    assert peak == IN_FLIGHT  # more waits open than the worker has slots: none of them holds one
    assert [f["status"] for f in finals] == ["confirmed"] * IN_FLIGHT
    assert left == 0
    assert await transfers_to(settings.rpc_url, settings.token_address, to) == IN_FLIGHT
    assert chain.status == WorkflowExecutionStatus.RUNNING
    await assert_replays(temporal_env.client, f"payment-{ids[0]}")


async def _all_registered(db_engine, query) -> bool:
    return await _count(db_engine, query) >= IN_FLIGHT


def _identity_pid(identity: str) -> int:
    return int(identity.split("@", 1)[0])


async def test_the_follower_moves_to_a_surviving_worker_within_the_bound(
    app_settings, temporal_env, dev, db_engine, http
):
    """Two worker processes; SIGKILL the one running the follower. Measured: from the kill until the follower runs
    on the survivor (bound: heartbeat timeout 10 s + retry 1 s + a poll). A payment submitted before the kill and
    mined after it confirms (no receipt missed)."""
    settings = app_settings.model_copy(update={"task_queue": f"failover-{uuid.uuid4().hex[:6]}"})
    wallet = await funded_wallet(http, dev, settings, 10)
    w3 = async_web3(settings.rpc_url)
    procs = [_worker_process(settings), _worker_process(settings)]
    chain_id = ct.workflow_id(settings.chain_id, settings.task_queue)
    try:
        async with serve_api(settings, temporal_env.client) as api:
            to = new_recipient()
            first = (
                await create(api, dev, {"wallet_id": wallet["id"], "to": to, "amount": "1", "asset": "USDC"})
            ).json()
            assert (await wait_final(api, dev, first["id"], timeout=60))["status"] == "confirmed"
            handle = temporal_env.client.get_workflow_handle(chain_id)

            async def follower():
                pending = (await handle.describe()).raw_description.pending_activities
                running = [p for p in pending if p.activity_type.name == ct.ACT_FOLLOW and p.last_worker_identity]
                return running[0] if running and running[0].state == 2 else None  # PENDING_ACTIVITY_STATE_STARTED

            before = await _until(follower, 30, "the follower running")
            victim = next(p for p in procs if p.pid == _identity_pid(before.last_worker_identity))
            survivor = next(p for p in procs if p is not victim)

            await w3.provider.make_request("evm_setAutomine", [False])
            body = {"wallet_id": wallet["id"], "to": to, "amount": "2", "asset": "USDC", "memo": "across the kill"}
            pid = (await create(api, dev, body)).json()["id"]

            async def submitted_and_registered() -> bool:
                q = (
                    sa.select(sa.func.count())
                    .select_from(receipt_waits)
                    .where(receipt_waits.c.payment_id == uuid.UUID(pid))
                )
                return await _count(db_engine, q) == 1

            await _until(submitted_and_registered, 60, "the second payment's wait registered")
            _kill(victim)
            killed = time.monotonic()
            await w3.provider.make_request("evm_mine", [])  # mined while nobody follows

            async def moved():
                now = await follower()
                return now if now and _identity_pid(now.last_worker_identity) == survivor.pid else None

            after = await _until(moved, 60, "the follower on the surviving worker", pause=0.05)
            failover = time.monotonic() - killed
            await w3.provider.make_request("evm_setAutomine", [True])
            final = await wait_final(api, dev, pid, timeout=60)
            confirmed_after = time.monotonic() - killed
    finally:
        await w3.provider.make_request("evm_setAutomine", [True])
        for proc in procs:
            if proc.poll() is None:
                _kill(proc)
        try:
            await temporal_env.client.get_workflow_handle(chain_id).terminate("test over")
        except Exception:
            pass
    print(
        f"\nfollower failover: SIGKILL of pid {victim.pid} -> follower running on pid {survivor.pid} after "
        f"{failover:.1f}s (attempt {before.attempt} -> {after.attempt}); the payment mined meanwhile confirmed "
        f"{confirmed_after:.1f}s after the kill"
    )
    assert failover <= 10 + 1 + 5  # heartbeat timeout + retry interval + a poll and this test's reading
    assert final["status"] == "confirmed"
    assert await transfers_to(settings.rpc_url, settings.token_address, to) == 2
