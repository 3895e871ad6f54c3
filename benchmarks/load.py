"""Load and scale figures against a running stack: many payments at once, many approvals parked at once.

    .venv/bin/python benchmarks/load.py payments --count 1000 --connections 50
    .venv/bin/python benchmarks/load.py approvals --count 2000
    .venv/bin/python benchmarks/load.py scaling --workers 1,2,4 --count 300 --in-flight 40 --wallets 8

`payments`: first two yardsticks on the same stack: bare Temporal (`--bare` workflows with one no-op activity,
20 at a time, on a private task queue with an in-process worker) and Paygent with 20 payments in flight
(`--reference` payments, POST -> confirmed, 20 at a time). Then `count` clients at once over `connections` HTTP
connections, each paying a fresh recipient under its own Idempotency-Key and retrying a 429 after its Retry-After
with the same key until accepted (the 429s are counted), then waiting for its payment. It checks what matters,
from the outside: every request answered (no 5xx, no timeout), every payment accepted and confirmed, exactly one Transfer log per
payment on chain from the paying wallet and the right balance at every recipient, and the ledger equal to the
chain. Prints the in-flight ratio (payments/s with `count` in flight / payments/s with 20 in flight), the wall
time beside `count` / the bare-1 rate, and the worker's and the API's memory before and after (when the stack is
ours: pids from $PAYGENT_HOME/run, children included).

`approvals`: `count` payments that need one approver (the dev policy's 1-of-3 tier), all left waiting on
their approval timers (429s retried as above); then the worker's memory and `GET /v1/approvals?status=pending`
latency as an approver at that size (the first page, and a walk through every page). The payments are
cancelled at the end (their reservations released) unless `--keep`; `pending-list` times the list alone.

`scaling`: payments/s with 1, 2 and 4 worker processes (`--workers`), each size on its own task queue with its
own workers and API process; see benchmarks/scaling.py.

Nothing here is a test: it prints figures for the README and the closing notes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import sqlalchemy as sa
from eth_account import Account
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from web3 import AsyncWeb3

from benchmarks.bare_temporal import BareWorkflow, bare_worker
from benchmarks.procs import rss_mb
from benchmarks.side_by_side import pct
from paygent.chain.rpc import async_web3
from paygent.chain.token import balance_of
from paygent.db.engine import async_url
from paygent.paths import dev_json_path

TRANSFER_TOPIC = "0x" + AsyncWeb3.keccak(text="Transfer(address,address,uint256)").hex().removeprefix("0x")


def memory() -> dict:
    return {"worker_rss_mb": rss_mb("worker"), "api_rss_mb": rss_mb("api")}


@dataclass
class Posted:
    """What the POSTs of one run met: how many were refused with 429 (each retried), and anything else."""

    connections: int  # requests on the wire at once (the client's connections)
    too_many: int = 0  # 429 answers (retried after Retry-After, same Idempotency-Key)
    retry_after_waited_s: float = 0.0  # summed over clients
    errors: dict[str, int] = field(default_factory=dict)  # 5xx, other 4xx; timeouts and transport errors (retried)

    def __post_init__(self) -> None:
        # Requests wait for a connection here, not in httpx's pool: with thousands queued there, its
        # assignment loop (quadratic in the queue) used the client's whole CPU and became the bottleneck.
        self.gate = asyncio.Semaphore(self.connections)

    def count(self, name: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1


async def post_until_accepted(
    http: httpx.AsyncClient, body: dict, headers: dict, posted: Posted, *, give_up_s: float = 900
) -> tuple[dict, float] | None:
    """POST one payment as a well-behaved client does: a 429 is retried after its Retry-After (plus up to 0.5 s of
    jitter, so the refused clients do not come back as one wave) with the same Idempotency-Key, until accepted.
    A timeout or a dropped connection is retried the same way (counted). Returns (202 body, seconds from the
    last POST going out on a connection to its 202), or None for anything else (counted)."""
    key = str(uuid.uuid4())
    deadline = time.perf_counter() + give_up_s
    while True:
        try:
            async with posted.gate:
                started = time.perf_counter()
                r = await http.post("/v1/payments", json=body, headers={**headers, "Idempotency-Key": key})
        except httpx.TransportError as exc:  # the connection failed under us: counted, never hidden, and retried
            # with the same Idempotency-Key (the API answers a request it already recorded with the same payment)
            posted.count(f"{type(exc).__name__} (retried)")
            if time.perf_counter() > deadline:
                return None
            await asyncio.sleep(1)
            continue
        if r.status_code == 202:
            return r.json(), time.perf_counter() - started
        if r.status_code not in (429, 503) or time.perf_counter() > deadline:  # 503: the database was full
            posted.count(str(r.status_code))
            return None
        posted.too_many += 1
        wait = float(r.headers.get("Retry-After", "1")) + random.uniform(0, 0.5)
        posted.retry_after_waited_s += wait
        await asyncio.sleep(wait)


async def post_all(
    http: httpx.AsyncClient, bodies: list[dict], headers: dict, connections: int
) -> tuple[list, Posted, float]:
    """POST every body at once (the client's connection limit bounds concurrency), each retried past its 429s:
    (accepted, what the POSTs met, seconds until the last was accepted)."""
    posted = Posted(connections)
    started = time.perf_counter()
    results = await asyncio.gather(*(post_until_accepted(http, b, headers, posted) for b in bodies))
    return [r for r in results if r is not None], posted, time.perf_counter() - started


async def pay_and_settle(
    http: httpx.AsyncClient, temporal: Client, bodies: list[dict], headers: dict, connections: int
) -> tuple[list, Posted, float, float]:
    """Every payment at once, each client posting (retrying its 429s) then waiting for its payment's workflow:
    (accepted with POST latency, what the POSTs met, seconds until the last was accepted, seconds until the
    last one finished). The wall time runs from the first POST to the last confirmation: a refused client's
    wait is part of it."""
    posted = Posted(connections)
    accepted: list[tuple[dict, float]] = []
    last_accepted = 0.0
    waits = asyncio.Semaphore(50)  # result long-polls open at once on the Temporal client
    started = time.perf_counter()

    async def one(body: dict) -> None:
        nonlocal last_accepted
        got = await post_until_accepted(http, body, headers, posted)
        if got is None:
            return
        accepted.append(got)
        last_accepted = max(last_accepted, time.perf_counter() - started)
        async with waits:
            await temporal.get_workflow_handle(got[0]["workflow_id"]).result()

    await asyncio.gather(*(one(b) for b in bodies))
    return accepted, posted, last_accepted, time.perf_counter() - started


IN_FLIGHT_REFERENCE = 20


def transfer_body(dev: dict, to: str) -> dict:
    wallet_id = dev["wallets"]["treasury"]["id"]
    return {"wallet_id": wallet_id, "to": to, "amount": "0.01", "asset": dev["token"]["symbol"], "memo": "load"}


async def bare_rate(temporal: Client, count: int) -> float:
    """Bare 1-activity workflows per second, 20 at a time, on this Temporal server."""
    queue = f"bare-load-{uuid.uuid4().hex[:8]}"
    gate = asyncio.Semaphore(IN_FLIGHT_REFERENCE)

    async def one() -> None:
        async with gate:
            await temporal.execute_workflow(BareWorkflow.run, 1, id=f"bare-{uuid.uuid4()}", task_queue=queue)

    async with bare_worker(temporal, queue):
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return count / (time.perf_counter() - started)


async def reference_rate(dev: dict, temporal: Client, count: int, headers: dict) -> float:
    """Payments per second (POST -> confirmed) with 20 in flight."""
    gate = asyncio.Semaphore(IN_FLIGHT_REFERENCE)
    limits = httpx.Limits(max_connections=IN_FLIGHT_REFERENCE)

    async with httpx.AsyncClient(base_url=dev["api_url"], timeout=60, limits=limits) as http:

        async def one() -> None:
            async with gate:
                r = await http.post(
                    "/v1/payments",
                    json=transfer_body(dev, Account.create().address),
                    headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                )
                if r.status_code != 202:
                    raise RuntimeError(f"POST /v1/payments answered {r.status_code}: {r.text[:300]}")
                await temporal.get_workflow_handle(r.json()["workflow_id"]).result()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return count / (time.perf_counter() - started)


async def payments(dev: dict, count: int, connections: int, reference: int, bare: int) -> dict:
    temporal = await Client.connect(dev["temporal_address"], data_converter=pydantic_data_converter)
    w3 = async_web3(dev["rpc_url"])
    token, treasury = dev["token"]["address"], dev["wallets"]["treasury"]
    headers = {"Authorization": f"Bearer {dev['users']['alice']['api_key']}"}
    bare_1_per_s = await bare_rate(temporal, bare)
    reference_per_s = await reference_rate(dev, temporal, reference, headers)
    recipients = [Account.create().address for _ in range(count)]
    bodies = [transfer_body(dev, to) for to in recipients]
    before = memory()
    first_block = await w3.eth.block_number + 1
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=dev["api_url"], timeout=60, limits=limits) as http:
        got, posted, post_seconds, wall = await pay_and_settle(http, temporal, bodies, headers, connections)
        latencies = [a[1] for a in got]
        accepted = [a[0] for a in got]
        statuses: dict[str, int] = {}
        for a in accepted:
            status = (await http.get(f"/v1/payments/{a['id']}", headers=headers)).json()["status"]
            statuses[status] = statuses.get(status, 0) + 1
    after = memory()
    logs = await w3.eth.get_logs(
        {
            "address": token,
            "fromBlock": first_block,
            "toBlock": "latest",
            "topics": [TRANSFER_TOPIC, "0x" + "0" * 24 + treasury["address"][2:].lower()],
        }
    )
    wanted = {r.lower() for r in recipients}
    to_ours = [log for log in logs if "0x" + log["topics"][2].hex()[-40:].lower() in wanted]
    on_chain = {r: await balance_of(w3, token, r) for r in recipients}
    engine = create_async_engine(async_url(dev["migrate_database_url"]))  # the owner: sees every row
    async with engine.connect() as conn:
        ledger = dict(
            (
                await conn.execute(
                    sa.text(
                        "SELECT account, SUM(amount_atomic) FROM ledger_entries WHERE account = ANY(:a) GROUP BY account"
                    ),
                    {"a": [f"external:{r}" for r in recipients]},
                )
            ).all()
        )
    await engine.dispose()
    mismatched = sum(1 for r in recipients if int(ledger.get(f"external:{r}", 0)) != on_chain[r])
    return {
        "bare_1_per_s": round(bare_1_per_s, 1),
        f"paygent_per_s_{IN_FLIGHT_REFERENCE}_in_flight": round(reference_per_s, 2),
        f"paygent_per_s_{count}_in_flight": round(count / wall, 2),
        # target >= 0.8: throughput holds when far more is in flight than the worker can run at once
        "in_flight_ratio": round((count / wall) / reference_per_s, 2),
        "wall_seconds": round(wall, 1),
        "count_over_bare_1_seconds": round(count / bare_1_per_s, 1),  # the wall time bare Temporal would need
        "payments": count,
        "client_connections": connections,
        "http_429_retried": posted.too_many,
        "retry_after_waited_s_total": round(posted.retry_after_waited_s, 1),
        "http_5xx": sum(n for k, n in posted.errors.items() if k.startswith("5")),
        "http_errors": posted.errors,
        "accepted": len(accepted),
        # the accepted POST's latency from when it went out on one of the `connections` connections
        "post_202_p50_ms": round(pct(latencies, 0.5)),
        "post_202_p95_ms": round(pct(latencies, 0.95)),
        "all_accepted_seconds": round(post_seconds, 1),
        "all_settled_seconds": round(wall, 1),
        "statuses": statuses,
        "all_confirmed": statuses.get("confirmed", 0) == count,
        "transfers_on_chain": len(to_ours),
        "recipients_paid_exactly_once": sum(1 for v in on_chain.values() if v == 10_000),
        "ledger_vs_chain_mismatches": mismatched,
        "memory_before": before,
        "memory_after": after,
    }


async def time_pending_list(http: httpx.AsyncClient, approver: dict, samples: int) -> dict:
    """`GET /v1/approvals?status=pending` as an approver, one at a time: the first page `samples` times, then
    one walk through every page (next_cursor until null)."""
    lat = []
    for _ in range(samples):
        t0 = time.perf_counter()
        r = await http.get("/v1/approvals", params={"status": "pending"}, headers=approver)
        lat.append(time.perf_counter() - t0)
        r.raise_for_status()
    page = len(r.json()["items"])
    pages, items, cursor, walk = 0, 0, None, []
    while True:
        t0 = time.perf_counter()
        params = {"status": "pending", "limit": "200", **({"cursor": cursor} if cursor else {})}
        r = await http.get("/v1/approvals", params=params, headers=approver)
        walk.append(time.perf_counter() - t0)
        r.raise_for_status()
        pages, items, cursor = pages + 1, items + len(r.json()["items"]), r.json()["next_cursor"]
        if cursor is None:
            break
    return {
        "pending_list_p50_ms": pct(lat, 0.5),
        "pending_list_p95_ms": pct(lat, 0.95),
        "pending_page_items": page,
        "pending_walk_pages_of_200": pages,
        "pending_walk_items": items,
        "pending_walk_page_p95_ms": pct(walk, 0.95),
        "pending_walk_seconds": round(sum(walk), 2),
    }


async def pending_list(dev: dict, samples: int) -> dict:
    """Only the pending list's timings, against whatever is parked now (e.g. after `approvals --keep`)."""
    bob = {"Authorization": f"Bearer {dev['users']['bob']['api_key']}"}
    async with httpx.AsyncClient(base_url=dev["api_url"], timeout=60) as http:
        return await time_pending_list(http, bob, samples)


async def approvals(dev: dict, count: int, connections: int, samples: int, keep: bool = False) -> dict:
    alice = {"Authorization": f"Bearer {dev['users']['alice']['api_key']}"}
    bob = {"Authorization": f"Bearer {dev['users']['bob']['api_key']}"}
    bodies = [
        {
            "wallet_id": dev["wallets"]["treasury"]["id"],
            "to": Account.create().address,
            "amount": "200",
            "asset": dev["token"]["symbol"],
            "memo": "parked approval",
        }
        for _ in range(count)
    ]
    before = memory()
    limits = httpx.Limits(max_connections=connections)
    engine = create_async_engine(async_url(dev["migrate_database_url"]))
    async with httpx.AsyncClient(base_url=dev["api_url"], timeout=60, limits=limits) as http:
        accepted, posted, post_seconds = await post_all(http, bodies, alice, connections)
        ids = [a[0]["id"] for a in accepted]
        started = time.perf_counter()
        while True:  # parked: every approval recorded as pending
            async with engine.connect() as conn:
                parked = await conn.scalar(
                    sa.text("SELECT count(*) FROM approvals WHERE status = 'pending' AND payment_id = ANY(:ids)"),
                    {"ids": ids},
                )
            if parked == len(ids) or time.perf_counter() - started > 600:
                break
            await asyncio.sleep(1)
        parked_seconds = time.perf_counter() - started
        await asyncio.sleep(5)  # let the worker settle before measuring its memory
        during = memory()
        listed = await time_pending_list(http, bob, samples)
        gate = asyncio.Semaphore(connections)

        async def cancel(pid: str) -> int:
            async with gate:
                return (
                    await http.post(
                        f"/v1/payments/{pid}/cancel", headers=alice, json={"reason": "load benchmark cleanup"}
                    )
                ).status_code

        cancelled = [] if keep else await asyncio.gather(*(cancel(pid) for pid in ids))
    await engine.dispose()
    return {
        "approvals": count,
        "http_429_retried": posted.too_many,
        "http_errors": posted.errors,
        "posted_seconds": round(post_seconds, 1),
        "parked": parked,
        "parked_after_seconds": round(post_seconds + parked_seconds, 1),
        "memory_before": before,
        "memory_parked": during,
        **listed,
        "cleanup_cancel_200": sum(1 for c in cancelled if c == 200) if not keep else "kept (--keep)",
        "memory_after_cleanup": memory(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["payments", "approvals", "pending-list", "scaling"])
    parser.add_argument("--count", type=int, default=None, help="1000 payments / 2000 approvals")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--samples", type=int, default=100, help="pending-list requests timed")
    parser.add_argument("--reference", type=int, default=200, help="payments run 20 at a time for the ratio")
    parser.add_argument("--bare", type=int, default=200, help="bare 1-activity workflows for the bare-1 rate")
    parser.add_argument("--workers", default="1,2,4", help="scaling: worker process counts, comma-separated")
    parser.add_argument("--in-flight", type=int, default=40, help="scaling: payments in flight at once")
    parser.add_argument("--wallets", type=int, default=8, help="scaling: paying wallets (nonces run per wallet)")
    parser.add_argument("--keep", action="store_true", help="approvals: leave them parked (no cleanup)")
    ns = parser.parse_args()
    dev_json = json.loads(dev_json_path().read_text())
    if ns.what == "payments":
        out = asyncio.run(payments(dev_json, ns.count or 1000, ns.connections, ns.reference, ns.bare))
    elif ns.what == "approvals":
        out = asyncio.run(approvals(dev_json, ns.count or 2000, ns.connections, ns.samples, ns.keep))
    elif ns.what == "scaling":
        from benchmarks.scaling import scaling

        sizes = [int(n) for n in ns.workers.split(",")]
        out = asyncio.run(scaling(dev_json, sizes, ns.count or 300, ns.in_flight, ns.wallets))
        for run in out["runs"]:  # the figures first, then the whole record
            print(f"{run['workers']} worker process(es): {run['payments_per_s']} payments/s ({out['label']})")
    else:
        out = asyncio.run(pending_list(dev_json, ns.samples))
    print(json.dumps(out, indent=2), flush=True)
    os._exit(0)  # temporalio/sdk-python#300
