"""Throughput with 1, 2 and 4 worker processes on the dev stack (issue 23): payments/s for each, and who used the CPU.

    PAYGENT_HOME=<the stack's> .venv/bin/python benchmarks/load.py scaling --workers 1,2,4 --count 300

For each worker count N, on a private task queue (the stack's own worker takes no part): N `python -m
workers.main` processes, each in its own process group as if on its own host, and one `paygent api` process
pointed at that queue, all on the stack's Postgres, Redis, Temporal and anvil. `count` payments of 0.01 USDC go
from `wallets` wallets (round robin: each wallet's nonces are taken one at a time, so one wallet alone would
measure its nonce lock, not the workers) to fresh recipients, `in_flight` at a time, POST -> confirmed, after a
warm-up of `in_flight` payments that is not counted. Printed per N: payments/s, latency, every payment confirmed
and one Transfer log each, and the CPU seconds each party used during the measured part (the workers, the API,
the Temporal server, anvil, and every `postgres` process on the machine: on a shared Postgres that includes other
clients) with the machine's busy share. What saturates first is read from those figures (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa
from eth_account import Account
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from web3 import AsyncWeb3

from benchmarks.procs import CLOCK_TICKS, family, stack_pid
from benchmarks.side_by_side import pct
from paygent.chain.anvil import dev_account
from paygent.chain.rpc import async_web3
from paygent.chain.token import mint, send_eth
from paygent.db.engine import async_url
from paygent.netutil import free_port
from paygent.paths import REPO_ROOT
from paygent.stack.servers import utcnow, worker_polling
from workflows import chain_types as ct

TRANSFER_TOPIC = "0x" + AsyncWeb3.keccak(text="Transfer(address,address,uint256)").hex().removeprefix("0x")
# Each process has its own database pool: N workers + the API must stay below Postgres's max_connections (100 by
# default, shared here with whatever else uses that server): 4 x 7 + 8 connections at most.
WORKER_POOL = {"PAYGENT_DB_POOL_SIZE": "5", "PAYGENT_DB_POOL_OVERFLOW": "2", "PAYGENT_WORKER_LOCAL_ACTIVITY_SLOTS": "7"}
API_POOL = {"PAYGENT_DB_POOL_SIZE": "6", "PAYGENT_DB_POOL_OVERFLOW": "2"}
CPU_PARTIES = ("workers", "api", "temporal", "anvil", "postgres_all")


def cpu_of(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and their descendants so far."""
    ticks = 0
    for pid in pids:
        for p in family(pid):
            try:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def postgres_pids() -> list[int]:
    out = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                out.append(int(comm.parent.name))
        except OSError:
            continue
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def snapshot(workers: list[subprocess.Popen], api: subprocess.Popen) -> dict[str, float]:
    temporal, anvil = stack_pid("temporal"), stack_pid("anvil")
    busy, total = machine_ticks()
    return {
        "workers": cpu_of([w.pid for w in workers]),
        "api": cpu_of([api.pid]),
        "temporal": cpu_of([temporal]) if temporal else float("nan"),
        "anvil": cpu_of([anvil]) if anvil else float("nan"),
        "postgres_all": sum(cpu_of([p]) for p in postgres_pids()),
        "_busy": busy,
        "_total": total,
    }


def used(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    out = {k: round(after[k] - before[k], 1) for k in before if not k.startswith("_")}
    out["machine_busy_pct"] = round(100 * (after["_busy"] - before["_busy"]) / (after["_total"] - before["_total"]))
    out["cores_busy"] = round((after["_busy"] - before["_busy"]) / CLOCK_TICKS / seconds, 2)
    return out


def start_workers(count: int, queue: str, temporal_address: str) -> list[subprocess.Popen]:
    env = {
        **os.environ,
        "PAYGENT_TASK_QUEUE": queue,
        "PAYGENT_WORKER_METRICS_ADDRESS": "",
        "PAYGENT_LOG_LEVEL": "WARNING",
        **WORKER_POOL,
    }
    since = utcnow()
    procs = [
        subprocess.Popen([sys.executable, "-m", "workers.main"], env=env, cwd=REPO_ROOT, start_new_session=True)
        for _ in range(count)
    ]
    deadline = time.monotonic() + 120
    waiting = list(procs)
    while waiting:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            stop(procs)
            raise RuntimeError(f"{count} workers did not all poll {queue} within 120 s")
        waiting = [p for p in waiting if not worker_polling(temporal_address, queue, p.pid, since)]
        time.sleep(0.5)
    return procs


def launch_api(queue: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PAYGENT_TASK_QUEUE": queue,
        "PAYGENT_API_URL": url,
        "PAYGENT_LOG_LEVEL": "WARNING",
        "PAYGENT_RATE_LIMIT_PREFIX": f"scaling-{uuid.uuid4().hex[:8]}",
        **API_POOL,
    }
    command = [sys.executable, "-m", "paygent.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(command, env=env, cwd=REPO_ROOT, start_new_session=True), url


async def start_api(queue: str) -> tuple[subprocess.Popen, str]:
    proc, url = launch_api(queue)
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"paygent api exited with {proc.returncode}")
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return proc, url
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    stop([proc])
    raise RuntimeError("paygent api did not answer /healthz within 60 s")


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


async def funded_wallets(dev: dict, count: int, usdc: int) -> list[dict]:
    """`count` new wallets of the dev tenant (alice may spend), each with 1 ETH for gas and `usdc` tokens."""
    w3 = async_web3(dev["rpc_url"])
    alice = {"Authorization": f"Bearer {dev['users']['alice']['api_key']}"}
    wallets = []
    async with httpx.AsyncClient(base_url=dev["api_url"], timeout=30, headers=alice) as http:
        for _ in range(count):
            r = await http.post("/v1/wallets", json={"name": f"scaling-{uuid.uuid4().hex[:8]}"})
            r.raise_for_status()
            wallet = r.json()
            grant = {"grants": [{"principal_id": dev["users"]["alice"]["id"], "permission": "spend"}]}
            (await http.put(f"/v1/wallets/{wallet['id']}/grants", json=grant)).raise_for_status()
            await send_eth(w3, dev_account(0), wallet["address"], 10**18)
            await mint(w3, dev["token"]["address"], dev_account(0), wallet["address"], usdc * 10**6)
            wallets.append(wallet)
    return wallets


async def pay_all(
    api_url: str, temporal: Client, dev: dict, wallets: list[dict], count: int, in_flight: int
) -> tuple[list[str], list[float], list[str]]:
    """`count` payments, `in_flight` at a time, each POST -> its workflow's end: (ids, seconds each, recipients)."""
    alice = {"Authorization": f"Bearer {dev['users']['alice']['api_key']}"}
    gate = asyncio.Semaphore(in_flight)
    recipients = [Account.create().address for _ in range(count)]
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)

    async with httpx.AsyncClient(base_url=api_url, timeout=120, limits=limits) as http:

        async def one(i: int) -> tuple[str, float]:
            body = {
                "wallet_id": wallets[i % len(wallets)]["id"],
                "to": recipients[i],
                "amount": "0.01",
                "asset": dev["token"]["symbol"],
                "memo": "scaling",
            }
            async with gate:
                started = time.perf_counter()
                while True:
                    r = await http.post(
                        "/v1/payments", json=body, headers={**alice, "Idempotency-Key": f"s-{i}-{id(body)}"}
                    )
                    if r.status_code != 429:
                        break
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))  # admission: same key again
                if r.status_code != 202:
                    raise RuntimeError(f"POST /v1/payments answered {r.status_code}: {r.text[:300]}")
                await temporal.get_workflow_handle(r.json()["workflow_id"]).result()
                return r.json()["id"], time.perf_counter() - started

        done = await asyncio.gather(*(one(i) for i in range(count)))
    return [d[0] for d in done], [d[1] for d in done], recipients


async def database_counters(dev: dict) -> dict[str, int]:
    """Postgres's own counters for the stack's database (commits, rows written): the load a payment puts on it."""
    engine = create_async_engine(async_url(dev["migrate_database_url"]))
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.text(
                        "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted AS rows_written "
                        "FROM pg_stat_database WHERE datname = current_database()"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    return {"commits": int(row.xact_commit), "rows_written": int(row.rows_written)}


async def history_shape(temporal: Client, workflow_id: str) -> dict[str, int]:
    """Events and workflow tasks in one payment's history: what each payment costs the Temporal server."""
    events = [e async for e in temporal.get_workflow_handle(workflow_id).fetch_history_events()]
    tasks = sum(1 for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    return {"history_events": len(events), "workflow_tasks": tasks}


async def checked(dev: dict, api_url: str, ids: list[str], recipients: list[str], first_block: int) -> dict:
    alice = {"Authorization": f"Bearer {dev['users']['alice']['api_key']}"}
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=alice) as http:
        for pid in ids:
            status = (await http.get(f"/v1/payments/{pid}")).json()["status"]
            statuses[status] = statuses.get(status, 0) + 1
    w3 = async_web3(dev["rpc_url"])
    logs = await w3.eth.get_logs(
        {"address": dev["token"]["address"], "fromBlock": first_block, "toBlock": "latest", "topics": [TRANSFER_TOPIC]}
    )
    wanted = {r.lower() for r in recipients}
    to_ours = sum(1 for log in logs if "0x" + log["topics"][2].hex()[-40:].lower() in wanted)
    return {"statuses": statuses, "transfer_logs": to_ours}


async def one_size(dev: dict, temporal: Client, wallets: list[dict], workers: int, count: int, in_flight: int) -> dict:
    queue = f"scaling-{workers}w-{uuid.uuid4().hex[:6]}"
    procs = await asyncio.to_thread(start_workers, workers, queue, dev["temporal_address"])
    api, api_url = await start_api(queue)
    w3 = async_web3(dev["rpc_url"])
    try:
        await pay_all(api_url, temporal, dev, wallets, in_flight, in_flight)  # warm-up: caches, pools, follower
        first_block = await w3.eth.block_number + 1
        await asyncio.sleep(2)  # Postgres flushes its statistics about once a second
        db_before = await database_counters(dev)
        before, started = snapshot(procs, api), time.perf_counter()
        ids, latencies, recipients = await pay_all(api_url, temporal, dev, wallets, count, in_flight)
        wall = time.perf_counter() - started
        cpu = used(before, snapshot(procs, api), wall)
        await asyncio.sleep(2)
        db_after = await database_counters(dev)
        result = await checked(dev, api_url, ids, recipients, first_block)
        shape = await history_shape(temporal, f"payment-{ids[0]}")
    finally:
        stop([*procs, api])
        try:
            await temporal.get_workflow_handle(ct.workflow_id(dev["chain_id"], queue)).terminate("scaling run over")
        except Exception:
            pass
    return {
        "workers": workers,
        "payments": count,
        "in_flight": in_flight,
        "payments_per_s": round(count / wall, 2),
        "wall_seconds": round(wall, 1),
        "latency_p50_s": round(pct(latencies, 0.5) / 1000, 2),
        "latency_p95_s": round(pct(latencies, 0.95) / 1000, 2),
        "cpu_seconds": cpu,
        "cpu_ms_per_payment": {k: round(1000 * v / count) for k, v in cpu.items() if k in CPU_PARTIES},
        "postgres_per_payment": {k: round((db_after[k] - db_before[k]) / count, 1) for k in db_after},
        "one_payment": shape,
        **result,
    }


async def scaling(dev: dict, sizes: list[int], count: int, in_flight: int, wallets: int) -> dict:
    from temporalio.contrib.pydantic import pydantic_data_converter

    temporal = await Client.connect(dev["temporal_address"], data_converter=pydantic_data_converter)
    payers = await funded_wallets(dev, wallets, usdc=max(10, count))
    runs = [await one_size(dev, temporal, payers, n, count, in_flight) for n in sizes]
    return {
        "label": "loaded machine (other test suites running on the same 2 cores)",
        "cores": os.cpu_count(),
        "wallets": wallets,
        "runs": runs,
        "summary": {f"{r['workers']}_workers_payments_per_s": r["payments_per_s"] for r in runs},
    }
