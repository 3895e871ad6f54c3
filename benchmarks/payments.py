"""Throughput and latency of payments end to end, against a running stack (`paygent stack up`).

    .venv/bin/python benchmarks/payments.py --count 100 --concurrency 20

Each payment goes through the API, a PaymentWorkflow (reserve, policy, sign, broadcast, receipt, ledger) and
anvil. Prints accepted/s (HTTP), settled/s (confirmed on chain), and latency percentiles from the POST to
`confirmed`. Amounts stay under the approval threshold so no human is needed. Nothing here is a test: it prints
figures for the README and the closing notes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

import httpx
from eth_account import Account

from paygent.paths import dev_json_path


async def one(http: httpx.AsyncClient, dev: dict, headers: dict) -> tuple[float, float, str]:
    started = time.perf_counter()
    r = await http.post(
        "/v1/payments",
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        json={
            "wallet_id": dev["wallets"]["treasury"]["id"],
            "to": Account.create().address,
            "amount": "0.01",
            "asset": dev["token"]["symbol"],
            "memo": "benchmark",
        },
    )
    r.raise_for_status()
    accepted = time.perf_counter() - started
    pid = r.json()["id"]
    while True:
        body = (await http.get(f"/v1/payments/{pid}", headers=headers)).json()
        if body["status"] in ("confirmed", "failed", "cancelled", "refused", "reorged_out"):
            return accepted, time.perf_counter() - started, body["status"]
        await asyncio.sleep(0.05)


async def main(count: int, concurrency: int) -> None:
    dev = json.loads(dev_json_path().read_text())
    headers = {"Authorization": f"Bearer {dev['users']['alice']['api_key']}"}
    gate = asyncio.Semaphore(concurrency)

    async def bounded():
        async with gate:
            return await one(http, dev, headers)

    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=dev["api_url"], timeout=120, limits=limits) as http:
        started = time.perf_counter()
        results = await asyncio.gather(*(bounded() for _ in range(count)))
        elapsed = time.perf_counter() - started
    accepted = sorted(r[0] for r in results)
    settled = sorted(r[1] for r in results)
    statuses = {s: sum(1 for r in results if r[2] == s) for s in {r[2] for r in results}}

    def pct(values, p):
        return values[min(len(values) - 1, int(len(values) * p))] * 1000

    print(f"payments: {count}, concurrency {concurrency}, statuses {statuses}")
    print(f"settled throughput: {count / elapsed:.1f} payments/s over {elapsed:.1f} s")
    print(
        f"POST -> 202 latency ms: p50 {pct(accepted, 0.5):.0f}  p95 {pct(accepted, 0.95):.0f}  "
        f"max {accepted[-1] * 1000:.0f}"
    )
    print(
        f"POST -> confirmed ms:   p50 {pct(settled, 0.5):.0f}  p95 {pct(settled, 0.95):.0f}  "
        f"max {settled[-1] * 1000:.0f}  mean {statistics.mean(settled) * 1000:.0f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.count, args.concurrency))
