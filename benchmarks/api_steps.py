"""Where POST /v1/payments -> 202 (and an approve) spends its time, step by step, under C concurrent clients.

    .venv/bin/python benchmarks/api_steps.py --count 300 --concurrency 20
    PYTHONPATH=/work/main .venv/bin/python benchmarks/api_steps.py ...   # the same steps on another checkout

Starts a second API process beside the stack's (same environment as the stack's API, read from /proc; its own
port) in which the steps of a request are wrapped with timers: authentication (the key lookup and the rate-limit
checks in Redis), the tenant transaction (begin .. commit, and inside it the wallet and grant read, the admission
check, recording the payment and its audit row), and the workflow start. It also counts, per request, the
statements sent to Postgres, the connection checkouts (each a ping while `pool_pre_ping` is on), the commits and
the Redis commands. Then C clients pay (POST -> confirmed on the stack's worker, as side_by_side.py does) and
the script prints each step's p50/p95 and the round trips per request (`--no-wait`: the clients POST back to
back; `--task-queue Q`: the measured API starts its workflows on a queue no worker polls, so that a busy worker
does not enter the comparison). With `--approvals N` it also approves N approvals parked now (e.g. by
`load.py approvals --keep`), one at a time as bob, timing the approve's steps the same way, and reads from each
approval's history how long the workflow task that carried the Update waited and ran.

The timers are installed only in that process, by this script; nothing in the application changes. A step that
does not exist in the checkout measured is left out. Nothing here is a test: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import functools
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

if not os.environ.get("PYTHONPATH"):  # else the checkout PYTHONPATH names is the one measured
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

# (module, attribute or Class.method, step name): wrapped when present. Names imported into a module are
# patched where they are used.
STEPS = [
    ("api.deps", "authenticate_key", "auth (total)"),
    ("api.deps", "_lookup", "auth: key lookup"),
    ("api.ratelimit", "RateLimits.check_key_not_blocked", "auth: key-failure check (Redis)"),
    ("api.ratelimit", "RateLimits.check_request", "auth: rate limits (Redis)"),
    ("api.routes.payments", "start_payment", "start_payment (total)"),
    ("api.payment_service", "spendable_wallet", "db: wallet + grant"),
    ("api.payment_service", "check_payment_input", "input check"),
    ("api.admission", "Admission.admit", "admission"),
    ("api.payment_service", "record_payment", "db: record payment (+ audit)"),
    ("paygent.db.payments", "append_audit", "db: audit append"),
    ("api.payment_service", "start_payment_workflow", "temporal: start workflow"),
    ("api.routes.approvals", "decide", "approve: decide (total)"),
    ("api.routes.approvals", "send_decision", "temporal: Update round trip"),
    ("api.routes.approvals", "attest", "approve: attestation"),
]
TXN_STEP = "db: tenant transaction (begin..commit)"

_request: contextvars.ContextVar[dict | None] = contextvars.ContextVar("bench_request", default=None)


def _add(name: str, seconds: float) -> None:
    current = _request.get()
    if current is not None:
        current["t"][name] = current["t"].get(name, 0.0) + seconds


def _count(name: str) -> None:
    current = _request.get()
    if current is not None:
        current["n"][name] = current["n"].get(name, 0) + 1


def _timed(fn, name: str):
    if not asyncio.iscoroutinefunction(fn):

        @functools.wraps(fn)
        def sync_wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                _add(name, time.perf_counter() - started)

        return sync_wrapper

    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            _add(name, time.perf_counter() - started)

    return wrapper


def _install() -> None:
    """In the measured API process: wrap the steps, count round trips, keep per-request records."""
    import importlib

    import redis.asyncio.client as redis_client
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    for module_name, attr, name in STEPS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        owner, _, method = attr.rpartition(".")
        target = getattr(module, owner) if owner else module
        fn = getattr(target, method or attr, None)
        if fn is not None:
            setattr(target, method or attr, _timed(fn, name))

    import api.payment_service as service

    original_txn = service.tenant_transaction

    @contextlib.asynccontextmanager
    async def timed_txn(engine, tenant_id):
        started = time.perf_counter()
        try:
            async with original_txn(engine, tenant_id) as conn:
                yield conn
        finally:
            _add(TXN_STEP, time.perf_counter() - started)

    service.tenant_transaction = timed_txn

    @event.listens_for(Pool, "checkout")
    def _checkout(*_a):
        _count("pg checkouts (a ping each with pre_ping)")

    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(*_a):
        _count("pg statements")

    @event.listens_for(Engine, "commit")
    def _commit(*_a):
        _count("pg commits")

    for cls in (redis_client.Redis, redis_client.Pipeline):
        original = cls.execute_command if cls is redis_client.Redis else cls.execute

        def make(orig):
            async def counted(self, *args, **kwargs):
                _count("redis round trips")
                return await orig(self, *args, **kwargs)

            return counted

        if cls is redis_client.Redis:
            cls.execute_command = make(original)
        else:
            cls.execute = make(original)


RECORDS: dict[str, list[dict]] = defaultdict(list)


class StepRecorder:
    """ASGI middleware: one record per request of the routes measured, with its total time."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == "/_steps":
            body = json.dumps(RECORDS).encode()
            RECORDS.clear()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        route = "payment" if path == "/v1/payments" and scope["method"] == "POST" else None
        if path.startswith("/v1/approvals/") and path.endswith("/approve"):
            route = "approve"
        if route is None:
            return await self.app(scope, receive, send)
        record: dict = {"t": {}, "n": {}}
        token = _request.set(record)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            record["t"]["in the API process (total)"] = time.perf_counter() - started
            _request.reset(token)
            RECORDS[route].append(record)


def serve(port: int) -> None:
    """The child: the stack's API app with the timers, on `port`."""
    import uvicorn

    _install()
    from api.app import create_app, server_options
    from paygent.logs import configure
    from paygent.settings import get_settings

    settings = get_settings()
    configure("WARNING")
    app = StepRecorder(create_app(settings))
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, **server_options(settings))


def stack_api_env() -> dict[str, str]:
    from benchmarks.procs import stack_pid

    pid = stack_pid("api")
    if pid is None:
        raise SystemExit("the stack's API is not running under this PAYGENT_HOME")
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered) + 0.5) - 1))] if ordered else float("nan")


def summarize(records: list[dict]) -> dict:
    out: dict = {"requests": len(records), "ms": {}, "per_request": {}}
    names = sorted({k for r in records for k in r["t"]}, key=lambda k: -pct([r["t"].get(k, 0) for r in records], 0.5))
    for k in names:
        values = [r["t"].get(k, 0.0) * 1000 for r in records]
        out["ms"][k] = {"p50": round(pct(values, 0.5), 1), "p95": round(pct(values, 0.95), 1)}
    for k in sorted({k for r in records for k in r["n"]}):
        values = [r["n"].get(k, 0) for r in records]
        out["per_request"][k] = {"p50": pct(values, 0.5), "max": max(values)}
    return out


ACTIVITY_LATENCY = re.compile(
    r'^temporal_(local_)?activity_execution_latency_(sum|count)\{activity_type="([^"]+)".*\} ([0-9.e+]+)$', re.M
)


def activity_totals(metrics_url: str | None) -> dict[str, list[float]]:
    """activity type -> [sum ms, count] from the worker's Prometheus endpoint (SDK histograms)."""
    if not metrics_url:
        return {}
    out: dict[str, list[float]] = {}
    for local, kind, activity, value in ACTIVITY_LATENCY.findall(httpx.get(metrics_url, timeout=10).text):
        entry = out.setdefault(f"{activity}{' (local)' if local else ''}", [0.0, 0.0])
        entry[0 if kind == "sum" else 1] += float(value)
    return out


def activity_means(before: dict, after: dict) -> dict:
    """Mean execution time per activity type over the payments measured (the SDK's buckets are too coarse)."""
    out = {}
    for name, (total, count) in after.items():
        total0, count0 = before.get(name, [0.0, 0.0])
        if count - count0 > 0:
            out[name] = {"mean_ms": round((total - total0) / (count - count0), 1), "count": int(count - count0)}
    return out


async def drive(
    base: str, dev: dict, count: int, concurrency: int, approvals: int, wait: bool, metrics_url: str | None = None
) -> dict:
    from eth_account import Account
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    temporal = await Client.connect(dev["temporal_address"], data_converter=pydantic_data_converter)
    alice = {"Authorization": f"Bearer {dev['users']['alice']['api_key']}"}
    bob = {"Authorization": f"Bearer {dev['users']['bob']['api_key']}"}
    recipients = [Account.create().address for _ in range(count + 10 + approvals)]

    def body(amount: str) -> dict:
        return {
            "wallet_id": dev["wallets"]["treasury"]["id"],
            "to": recipients.pop(),
            "amount": amount,
            "asset": dev["token"]["symbol"],
            "memo": "api steps",
        }

    client_ms: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as http:
        gate = asyncio.Semaphore(concurrency)

        async def pay() -> None:
            async with gate:
                started = time.perf_counter()
                r = await http.post(
                    "/v1/payments", json=body("0.01"), headers={**alice, "Idempotency-Key": str(uuid.uuid4())}
                )
                client_ms.append((time.perf_counter() - started) * 1000)
                r.raise_for_status()
                if wait:
                    await temporal.get_workflow_handle(r.json()["workflow_id"]).result()

        for _ in range(10):  # warm the API's pools and caches
            await pay()
        await http.get("/_steps")
        client_ms.clear()
        totals = activity_totals(metrics_url)
        started = time.perf_counter()
        await asyncio.gather(*(pay() for _ in range(count)))
        payments_client = {"p50": round(pct(client_ms, 0.5), 1), "p95": round(pct(client_ms, 0.95), 1)}
        if wait:
            payments_client["payments_per_s"] = round(count / (time.perf_counter() - started), 2)
        activities = activity_means(totals, activity_totals(metrics_url))
        approve_client: dict = {}
        if approvals:
            # approvals parked now (e.g. by `load.py approvals --keep`), newest first, as their approver sees them
            listed = await http.get("/v1/approvals", params={"status": "pending", "limit": str(approvals)}, headers=bob)
            views = {a["approval_id"]: a["operation_hash"] for a in listed.json()["items"]}
            await http.get("/_steps")  # only the approves below
            lat = []
            for approval_id, op_hash in views.items():
                started = time.perf_counter()
                r = await http.post(
                    f"/v1/approvals/{approval_id}/approve",
                    json={"operation_hash": op_hash},
                    headers={**bob, "Idempotency-Key": str(uuid.uuid4())},
                )
                lat.append((time.perf_counter() - started) * 1000)
                r.raise_for_status()
            approve_client = {"p50": round(pct(lat, 0.5), 1), "p95": round(pct(lat, 0.95), 1), "samples": len(lat)}
            approve_client["history_ms"] = await update_task_times(temporal, list(views))
        records = (await http.get("/_steps")).json()
    return {
        "payment_post_202_client_ms": payments_client,
        "payment_steps": summarize(records.get("payment", [])),
        "worker_activities_during_payments": activities,
        "approve_client_ms": approve_client,
        "approve_steps": summarize(records.get("approve", [])) if approvals else {},
    }


async def update_task_times(temporal, approval_ids: list[str]) -> dict:
    """From each approval's history, the workflow task that carried the approve Update: scheduled -> started
    (the server handing it to the worker) and started -> completed (the worker running it), p50/p95 in ms."""
    from temporalio.api.enums.v1 import EventType

    dispatch, run = [], []
    for approval_id in approval_ids:
        history = await temporal.get_workflow_handle(f"approval-{approval_id}").fetch_history()
        events = list(history.events)
        for i, e in enumerate(events):
            if e.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                continue
            done = next(x for x in reversed(events[:i]) if x.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
            started = next(
                x for x in reversed(events[:i]) if x.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
            )
            scheduled = next(
                x for x in reversed(events[:i]) if x.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
            )

            def ms(a, b) -> float:
                return (b.event_time.ToDatetime() - a.event_time.ToDatetime()).total_seconds() * 1000

            dispatch.append(ms(scheduled, started))
            run.append(ms(started, done))
            break
    return {
        "task_scheduled_to_started": {"p50": round(pct(dispatch, 0.5), 1), "p95": round(pct(dispatch, 0.95), 1)},
        "task_started_to_completed": {"p50": round(pct(run, 0.5), 1), "p95": round(pct(run, 0.95), 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--approvals", type=int, default=0, help="also approve this many parked approvals, one at a time"
    )
    parser.add_argument("--pool", type=int, default=0, help="the measured API's pool size and overflow (else 20+10)")
    parser.add_argument("--no-wait", action="store_true", help="clients POST back to back (no wait for confirmed)")
    parser.add_argument(
        "--worker-metrics",
        default=None,
        help="the worker's /metrics URL: print each activity's mean execution time over the payments measured",
    )
    parser.add_argument(
        "--task-queue",
        default=None,
        help="the measured API starts its payments on this queue (e.g. one no worker polls)",
    )
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.serve is not None:
        serve(ns.serve)
        return
    from paygent.paths import dev_json_path

    dev = json.loads(dev_json_path().read_text())
    port = free_port()
    env = stack_api_env()
    if ns.pool:  # a smaller pool where Postgres' connection slots are shared and scarce
        env.update(PAYGENT_DB_POOL_SIZE=str(ns.pool), PAYGENT_DB_POOL_OVERFLOW=str(ns.pool))
    if ns.task_queue:  # payments started where no worker runs them: admission must not refuse them either
        env.update(PAYGENT_TASK_QUEUE=ns.task_queue, PAYGENT_MAX_PAYMENTS_IN_FLIGHT="1000000")
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        out = asyncio.run(drive(base, dev, ns.count, ns.concurrency, ns.approvals, not ns.no_wait, ns.worker_metrics))
        out["pythonpath"] = stack_api_env()["PYTHONPATH"]
        print(json.dumps(out, indent=2), flush=True)
    finally:
        child.terminate()
        child.wait(30)
    os._exit(0)  # temporalio/sdk-python#300


if __name__ == "__main__":
    main()
