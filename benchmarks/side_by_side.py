"""Paygent's hot path beside bare Temporal, measured in the same run on the same Temporal server.

    .venv/bin/python benchmarks/side_by_side.py                 # against `make up`'s stack
    PAYGENT_HOME=/tmp/other .venv/bin/python benchmarks/side_by_side.py --concurrency 20 --json

Reads the stack's addresses and keys from dev.json (`$PAYGENT_HOME/dev.json`, else `.paygent/dev.json`).
Bare workflows run on a private task queue with a worker started in this process; Paygent runs on its own
worker. Each throughput figure is the median of `--repeat` batches, run interleaved (bare, bare, Paygent, ...)
so noise from a shared machine lands on both sides; latencies are percentiles over every sample.

Figures (and the issue 11 targets, printed as ratios to bare Temporal measured here):
- throughput at concurrency C: bare workflow with 1 no-op activity, with N (N = the activities a payment
  runs, regular and local, counted from a real payment's history; bare-N runs N regular ones), and payments
  POST -> confirmed through the HTTP API;
- POST /v1/payments -> 202 at C; serial latency (one at a time) of bare-1, bare-N and a payment;
- decision round trip: a bare Update vs POST /v1/approvals/{id}/approve (a 1-of-3 tier, approved by bob);
- x402: a paid GET through Paygent (POST kind=x402 -> confirmed) vs the official x402 SDK client paying the
  same local paid service directly;
- server round trips of one payment (ACTIVITY_TASK_SCHEDULED + WORKFLOW_TASK_SCHEDULED in its history);
- CPU-seconds per payment: the CPU time the worker, the Temporal server and the API used during the Paygent
  batches of the throughput figure (read from /proc; the stack must be ours: pids in $PAYGENT_HOME/run),
  divided by the payments those batches made.
Nothing here is a test: it prints figures for the README and the closing notes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from eth_account import Account
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from benchmarks.bare_temporal import FINISH, UPDATE, BareUpdateWorkflow, BareWorkflow, bare_worker
from benchmarks.procs import cpu_snapshot, cpu_used
from paygent.chain.rpc import async_web3
from paygent.paths import dev_json_path

APPROVAL_AMOUNT = "200"  # the dev policy's 1-of-3 tier, no time-lock: one approval lets it pay
TERMINAL = ("confirmed", "failed", "cancelled", "refused", "reorged_out")


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered) + 0.5) - 1))] * 1000


@dataclass
class Stack:
    dev: dict
    http: httpx.AsyncClient
    temporal: Client
    queue: str

    def key(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.dev['users'][user]['api_key']}"}

    # --- bare Temporal ---
    async def bare(self, activities: int) -> float:
        started = time.perf_counter()
        await self.temporal.execute_workflow(
            BareWorkflow.run, activities, id=f"bare-{uuid.uuid4()}", task_queue=self.queue
        )
        return time.perf_counter() - started

    # --- Paygent ---
    async def post_payment(self, body: dict, user: str = "alice") -> tuple[float, dict]:
        started = time.perf_counter()
        r = await self.http.post(
            "/v1/payments", json=body, headers={**self.key(user), "Idempotency-Key": str(uuid.uuid4())}
        )
        if r.status_code != 202:
            raise RuntimeError(f"POST /v1/payments answered {r.status_code}: {r.text[:300]}")
        return time.perf_counter() - started, r.json()

    async def confirmed(self, accepted: dict) -> str:
        """Wait on the workflow itself (no polling load), then read the status the API reports."""
        await self.temporal.get_workflow_handle(accepted["workflow_id"]).result()
        r = await self.http.get(f"/v1/payments/{accepted['id']}", headers=self.key("alice"))
        return r.json()["status"]

    def transfer(self, amount: str = "0.01") -> dict:
        return {
            "wallet_id": self.dev["wallets"]["treasury"]["id"],
            "to": Account.create().address,
            "amount": amount,
            "asset": self.dev["token"]["symbol"],
            "memo": "side-by-side benchmark",
        }

    async def payment(self) -> tuple[float, float]:
        """(POST -> 202, POST -> confirmed) in seconds."""
        started = time.perf_counter()
        accepted_s, accepted = await self.post_payment(self.transfer())
        status = await self.confirmed(accepted)
        if status != "confirmed":
            raise RuntimeError(f"payment {accepted['id']} ended {status}")
        return accepted_s, time.perf_counter() - started


async def batch(count: int, concurrency: int, one: Callable[[], Awaitable]) -> tuple[float, list]:
    """Run `count` calls of `one`, at most `concurrency` at once: (per second, results)."""
    gate = asyncio.Semaphore(concurrency)

    async def bounded():
        async with gate:
            return await one()

    started = time.perf_counter()
    results = await asyncio.gather(*(bounded() for _ in range(count)))
    return count / (time.perf_counter() - started), results


async def payment_shape(s: Stack) -> tuple[int, int, int]:
    """(regular activities, local activities, server round trips) of a real payment, from its history.

    A round trip is a task the server hands a worker: each activity task and each workflow task scheduled.
    """
    _, accepted = await s.post_payment(s.transfer())
    await s.confirmed(accepted)
    history = await s.temporal.get_workflow_handle(accepted["workflow_id"]).fetch_history()
    regular = sum(1 for e in history.events if e.HasField("activity_task_scheduled_event_attributes"))
    workflow_tasks = sum(1 for e in history.events if e.HasField("workflow_task_scheduled_event_attributes"))
    local = sum(
        1
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )
    return regular, local, regular + workflow_tasks


async def throughput(s: Stack, n: int, count: int, concurrency: int, repeat: int) -> dict:
    rates: dict[str, list[float]] = {"bare_1": [], "bare_n": [], "paygent": []}
    accepted: list[float] = []
    cpu: dict[str, float] | None = {}
    for _ in range(repeat):
        rates["bare_1"].append((await batch(count, concurrency, lambda: s.bare(1)))[0])
        rates["bare_n"].append((await batch(count, concurrency, lambda: s.bare(n)))[0])
        before = cpu_snapshot()
        rate, results = await batch(count, concurrency, s.payment)
        used = cpu_used(before, cpu_snapshot())
        cpu = None if cpu is None or used is None else {k: cpu.get(k, 0.0) + v for k, v in used.items()}
        rates["paygent"].append(rate)
        accepted += [r[0] for r in results]
    payments_made = count * repeat
    return {
        **{f"{k}_per_s": statistics.median(v) for k, v in rates.items()},
        "post_202_p50_ms": pct(accepted, 0.5),
        "post_202_p95_ms": pct(accepted, 0.95),
        # None when the stack's processes are not ours to read (another PAYGENT_HOME, or elsewhere)
        "cpu_seconds_per_payment": None if cpu is None else sum(cpu.values()) / payments_made,
        "cpu_seconds_per_payment_by_process": None if cpu is None else {k: v / payments_made for k, v in cpu.items()},
    }


async def serial(s: Stack, n: int, samples: int) -> dict:
    lat: dict[str, list[float]] = {"bare_1": [], "bare_n": [], "paygent": []}
    for _ in range(samples):  # interleaved, so a noisy moment hits all three
        lat["bare_1"].append(await s.bare(1))
        lat["bare_n"].append(await s.bare(n))
        lat["paygent"].append((await s.payment())[1])
    return {f"{k}_p50_ms": pct(v, 0.5) for k, v in lat.items()}


async def bare_updates(s: Stack, samples: int) -> list[float]:
    handles = [
        await s.temporal.start_workflow(BareUpdateWorkflow.run, id=f"bare-update-{uuid.uuid4()}", task_queue=s.queue)
        for _ in range(samples)
    ]
    for h in handles:  # the first task has run and the workflow waits, like an approval does
        await h.execute_update(UPDATE, "warm-up", result_type=int)
    out = []
    for h in handles:
        started = time.perf_counter()
        await h.execute_update(UPDATE, "bob", result_type=int)
        out.append(time.perf_counter() - started)
    for h in handles:
        await h.signal(FINISH)
    return out


async def pending_approval(s: Stack) -> tuple[str, str, dict]:
    """A payment waiting for one approver: (approval id, operation hash, accepted)."""
    _, accepted = await s.post_payment(s.transfer(APPROVAL_AMOUNT))
    for _ in range(600):
        r = await s.http.get(f"/v1/approvals/{accepted['id']}", headers=s.key("bob"))
        if r.status_code == 200 and r.json().get("you_may_approve"):
            return accepted["id"], r.json()["operation_hash"], accepted
        await asyncio.sleep(0.05)
    raise RuntimeError(f"payment {accepted['id']} never reached its approval")


async def approvals(s: Stack, samples: int) -> dict:
    bare = await bare_updates(s, samples)
    pending = [await pending_approval(s) for _ in range(samples)]
    http = []
    for approval_id, op_hash, _ in pending:
        started = time.perf_counter()
        r = await s.http.post(
            f"/v1/approvals/{approval_id}/approve",
            json={"operation_hash": op_hash},
            headers={**s.key("bob"), "Idempotency-Key": str(uuid.uuid4())},
        )
        http.append(time.perf_counter() - started)
        if r.status_code != 200:
            raise RuntimeError(f"approve answered {r.status_code}: {r.text[:300]}")
    for _, _, accepted in pending:  # approved: they pay; let them finish before the next figure
        await s.confirmed(accepted)
    return {
        "bare_update_p50_ms": pct(bare, 0.5),
        "bare_update_p95_ms": pct(bare, 0.95),
        "approve_p50_ms": pct(http, 0.5),
        "approve_p95_ms": pct(http, 0.95),
    }


async def funded_payer(s: Stack, tokens: int):
    from paygent.chain.anvil import dev_account
    from paygent.chain.token import mint

    w3 = async_web3(s.dev["rpc_url"])
    payer = Account.create()
    await mint(w3, s.dev["token"]["address"], dev_account(0), payer.address, tokens)
    return payer


async def offered_requirement(s: Stack, url: str) -> dict:
    """What the paid service asks for (its 402's PAYMENT-REQUIRED header), checked against the stack's token.

    The SDK matches the allow-list on the requirement's own network and asset: a client configured from dev.json
    alone is refused ("rejected by spend_controls") whenever the service offers anything else, e.g. a token from
    an earlier `stack up` than the one dev.json names. Said plainly here instead.
    """
    r = await s.http.get(url)
    header = r.headers.get("payment-required")
    if r.status_code != 402 or header is None:
        raise RuntimeError(f"{url} answered {r.status_code} without a PAYMENT-REQUIRED header: {r.text[:200]}")
    accepts = json.loads(base64.b64decode(header))["accepts"]
    chain = f"eip155:{s.dev['chain_id']}"
    token = s.dev["token"]["address"].lower()
    for option in accepts:
        if option["scheme"] == "exact" and option["network"] == chain and option["asset"].lower() == token:
            return option
    raise RuntimeError(
        f"the paid service at {url} offers {[(o['network'], o['asset']) for o in accepts]}, not the stack's "
        f"token {s.dev['token']['address']} on {chain} (dev.json): it runs against another deployment; "
        "restart it (`paygent stack up`) or point dev.json at the token it uses"
    )


async def x402_fetches(s: Stack, samples: int) -> dict:
    from x402 import x402Client
    from x402.http.clients import x402HttpxClient
    from x402.mechanisms.evm import EthAccountSigner
    from x402.mechanisms.evm.exact import register_exact_evm_client

    url = f"{s.dev['x402_service_url']}/weather"
    offered = await offered_requirement(s, url)
    client = x402Client()
    register_exact_evm_client(client, EthAccountSigner(await funded_payer(s, 10_000_000)))
    # Allow-list exactly what the service asks for (its own spelling of network and asset), capped at 0.05 USDC.
    client.set_spend_controls(
        {
            "allowed_assets": [
                {"network": offered["network"], "asset": offered["asset"], "max_amount_per_payment": "50000"}
            ]
        }
    )
    body = {
        "kind": "x402",
        "wallet_id": s.dev["wallets"]["treasury"]["id"],
        "url": url,
        "max_amount": "0.05",
        "asset": s.dev["token"]["symbol"],
    }
    direct, paygent = [], []
    async with x402HttpxClient(client, timeout=60) as sdk:
        for _ in range(samples):
            started = time.perf_counter()
            r = await sdk.get(url)
            direct.append(time.perf_counter() - started)
            if r.status_code != 200:
                raise RuntimeError(f"direct x402 fetch answered {r.status_code}: {r.text[:300]}")
            started = time.perf_counter()
            _, accepted = await s.post_payment(body)
            status = await s.confirmed(accepted)
            paygent.append(time.perf_counter() - started)
            if status != "confirmed":
                raise RuntimeError(f"x402 payment {accepted['id']} ended {status}")
    from benchmarks.x402_sessions import session_vs_direct  # a session: budget once, then one Update per request

    session = await session_vs_direct(
        s.http,
        s.dev["users"]["alice"]["api_key"],
        s.dev["wallets"]["treasury"]["id"],
        s.dev["x402_service_url"],
        await funded_payer(s, 10_000_000),
        chain_id=s.dev["chain_id"],
        token=s.dev["token"]["address"],
        decimals=s.dev["token"]["decimals"],
        samples=samples,
    )
    return {
        "direct_sdk_p50_ms": pct(direct, 0.5),
        "paygent_p50_ms": pct(paygent, 0.5),
        "session_direct_sdk_p50_ms": session["direct_sdk_p50_ms"],
        "session_fetch_p50_ms": session["session_fetch_p50_ms"],
    }


def ratios(f: dict) -> dict:
    tp, se, ap, x = f["throughput"], f["serial"], f["approvals"], f["x402"]
    return {
        "throughput_vs_bare_1": tp["paygent_per_s"] / tp["bare_1_per_s"],
        "throughput_vs_bare_n": tp["paygent_per_s"] / tp["bare_n_per_s"],
        "serial_p50_vs_bare_1": se["paygent_p50_ms"] / se["bare_1_p50_ms"],
        "serial_p50_vs_bare_n": se["paygent_p50_ms"] / se["bare_n_p50_ms"],
        "approve_p95_vs_bare_update_p95": ap["approve_p95_ms"] / ap["bare_update_p95_ms"],
        "x402_p50_vs_direct_p50": x["paygent_p50_ms"] / x["direct_sdk_p50_ms"],
        "x402_session_p50_vs_direct_p50": x["session_fetch_p50_ms"] / x["session_direct_sdk_p50_ms"],
    }


TARGETS = [  # (label, value, target, higher is better)
    ("payments/s at C vs bare-1", lambda f: f["ratios"]["throughput_vs_bare_1"], 0.5, True),
    ("serial p50 vs bare-1", lambda f: f["ratios"]["serial_p50_vs_bare_1"], 2.0, False),
    ("POST -> 202 p95 at C (ms)", lambda f: f["throughput"]["post_202_p95_ms"], 100, False),
    ("approve p95 vs bare Update p95", lambda f: f["ratios"]["approve_p95_vs_bare_update_p95"], 1.5, False),
    ("x402 p50 vs direct SDK p50", lambda f: f["ratios"]["x402_p50_vs_direct_p50"], 3.0, False),
    ("x402 session fetch p50 vs direct SDK p50", lambda f: f["ratios"]["x402_session_p50_vs_direct_p50"], 1.5, False),
    ("server round trips per plain payment", lambda f: f["round_trips_per_payment"], 6, False),
    (
        "CPU-seconds per payment (worker + server + API)",
        lambda f: f["throughput"]["cpu_seconds_per_payment"],
        0.1,
        False,
    ),
]


def _split(f: dict) -> str:
    return f": {f['n_regular']} regular + {f['n_local']} local" if f.get("n_local") else ""


def _cpu(tp: dict) -> str:
    by = tp.get("cpu_seconds_per_payment_by_process")
    if not by:
        return "not measured (the stack's processes are not this PAYGENT_HOME's)"
    parts = ", ".join(f"{k} {v:.3f}" for k, v in by.items())
    return f"{tp['cpu_seconds_per_payment']:.3f} ({parts})"


def report(f: dict) -> str:
    tp, se, ap, x, n, c = f["throughput"], f["serial"], f["approvals"], f["x402"], f["n"], f["concurrency"]
    lines = [
        f"Paygent vs bare Temporal, same server, same run (N = {n} activities per payment"
        f"{_split(f)}, C = {c}, "
        f"{f['count']} per batch, median of {f['repeat']} batches)",
        "",
        "| figure | bare Temporal | Paygent | ratio |",
        "|---|---|---|---|",
        f"| throughput at C={c}, 1 activity | {tp['bare_1_per_s']:.1f} wf/s | {tp['paygent_per_s']:.1f} payments/s | "
        f"{f['ratios']['throughput_vs_bare_1']:.2f}x |",
        f"| throughput at C={c}, {n} activities | {tp['bare_n_per_s']:.1f} wf/s | {tp['paygent_per_s']:.1f} "
        f"payments/s | {f['ratios']['throughput_vs_bare_n']:.2f}x |",
        f"| POST /v1/payments -> 202 at C={c} | - | p50 {tp['post_202_p50_ms']:.0f} ms, "
        f"p95 {tp['post_202_p95_ms']:.0f} ms | - |",
        f"| serial latency p50, 1 activity | {se['bare_1_p50_ms']:.0f} ms | {se['paygent_p50_ms']:.0f} ms | "
        f"{f['ratios']['serial_p50_vs_bare_1']:.2f}x |",
        f"| serial latency p50, {n} activities | {se['bare_n_p50_ms']:.0f} ms | {se['paygent_p50_ms']:.0f} ms | "
        f"{f['ratios']['serial_p50_vs_bare_n']:.2f}x |",
        f"| decision round trip (Update vs HTTP approve) | p50 {ap['bare_update_p50_ms']:.0f} ms, p95 "
        f"{ap['bare_update_p95_ms']:.0f} ms | p50 {ap['approve_p50_ms']:.0f} ms, p95 {ap['approve_p95_ms']:.0f} ms "
        f"| {f['ratios']['approve_p95_vs_bare_update_p95']:.2f}x at p95 |",
        f"| x402 paid GET (direct SDK vs through Paygent) | p50 {x['direct_sdk_p50_ms']:.0f} ms | "
        f"p50 {x['paygent_p50_ms']:.0f} ms | {f['ratios']['x402_p50_vs_direct_p50']:.2f}x |",
        f"| x402 paid GET in a session (direct SDK vs session fetch) | p50 {x['session_direct_sdk_p50_ms']:.0f} ms | "
        f"p50 {x['session_fetch_p50_ms']:.0f} ms | {f['ratios']['x402_session_p50_vs_direct_p50']:.2f}x |",
        f"| server round trips of one payment (activity + workflow tasks) | - | {f['round_trips_per_payment']} | - |",
        f"| CPU-seconds per payment at C={c} (worker + Temporal + API) | - | {_cpu(tp)} | - |",
        "",
        "Targets (issues 18 and 19):",
    ]
    for label, value, target, higher in TARGETS:
        v = value(f)
        if v is None:
            lines.append(f"  [not measured] {label} (the stack's processes are not this PAYGENT_HOME's)")
            continue
        ok = v >= target if higher else v <= target
        lines.append(f"  [{'met' if ok else 'NOT met'}] {label}: {v:.2f} ({'>=' if higher else '<='} {target})")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict:
    dev = json.loads(dev_json_path().read_text())
    temporal = await Client.connect(dev["temporal_address"], data_converter=pydantic_data_converter)
    queue = f"bare-benchmark-{uuid.uuid4().hex[:8]}"
    limits = httpx.Limits(max_connections=max(args.concurrency, 10))
    async with (
        bare_worker(temporal, queue),
        httpx.AsyncClient(base_url=dev["api_url"], timeout=120, limits=limits) as http,
    ):
        s = Stack(dev=dev, http=http, temporal=temporal, queue=queue)
        regular, local, round_trips = await payment_shape(s)
        n = regular + local  # bare-N runs them all as regular activities: the payment's shape before issue 11
        await batch(args.concurrency, args.concurrency, lambda: s.bare(n))  # warm both workers
        await batch(args.concurrency, args.concurrency, s.payment)
        figures = {
            "n": n,
            "n_regular": regular,
            "n_local": local,
            "round_trips_per_payment": round_trips,
            "concurrency": args.concurrency,
            "count": args.count,
            "repeat": args.repeat,
        }
        parts = {
            "throughput": lambda: throughput(s, n, args.count, args.concurrency, args.repeat),
            "serial": lambda: serial(s, n, args.samples),
            "approvals": lambda: approvals(s, args.samples),
            "x402": lambda: x402_fetches(s, args.samples),
        }
        for name in args.parts.split(","):
            figures[name] = await parts[name]()
    if all(name in figures for name in parts):
        figures["ratios"] = ratios(figures)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--count",
        type=int,
        default=200,
        help="workflows/payments per throughput batch (shorter batches keep bare Temporal from its steady state)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="throughput batches per figure (median)")
    parser.add_argument("--samples", type=int, default=15, help="serial samples per latency figure")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument(
        "--parts",
        default="throughput,serial,approvals,x402",
        help="which figures to measure (a partial run prints JSON)",
    )
    parser.add_argument("--show", metavar="FILE", help="print the table of a saved --json output; no run")
    ns = parser.parse_args()
    result = json.loads(Path(ns.show).read_text()) if ns.show else asyncio.run(main(ns))
    print(json.dumps(result, indent=2) if ns.json or "ratios" not in result else report(result), flush=True)
    os._exit(0)  # temporalio/sdk-python#300: a client script can crash at interpreter exit
