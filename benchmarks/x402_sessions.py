"""A paid GET inside an x402 session vs the official x402 SDK client paying the same local service directly.

    .venv/bin/python benchmarks/x402_sessions.py --samples 30      # against `paygent stack up`'s stack

`session_vs_direct(...)` is what benchmarks/side_by_side.py can call (its `x402` section has the same inputs):
it opens one session (budget for every sample), then alternates direct SDK fetch / session fetch, serially, and
answers both p50s and their ratio (issue 19's target: <= 1.5x). Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from eth_account.signers.local import LocalAccount

from paygent.chain.rpc import async_web3

PRICE_ATOMIC = 10_000  # the paid service's /weather


def _p50_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def direct_client(payer: LocalAccount, chain_id: int, token: str):
    """The official x402 SDK client, allowed our local token, paying from `payer`."""
    from x402 import x402Client
    from x402.http.clients import x402HttpxClient
    from x402.mechanisms.evm import EthAccountSigner
    from x402.mechanisms.evm.exact import register_exact_evm_client

    client = x402Client()
    register_exact_evm_client(client, EthAccountSigner(payer))
    client.set_spend_controls(
        {
            "allowed_assets": [
                {"network": f"eip155:{chain_id}", "asset": token, "max_amount_per_payment": str(PRICE_ATOMIC * 5)}
            ]
        }
    )
    return x402HttpxClient(client, timeout=60)


async def session_vs_direct(
    api: httpx.AsyncClient,
    api_key: str,
    wallet_id: str,
    service_url: str,
    payer: LocalAccount,
    *,
    chain_id: int,
    token: str,
    decimals: int = 6,
    samples: int = 20,
    warmup: int = 2,
) -> dict:
    """{direct_sdk_p50_ms, session_fetch_p50_ms, session_vs_direct}: serial paid GETs of `service_url`/weather,
    interleaved. `payer` must hold (samples + warmup) * 0.01 tokens; the wallet the same through Paygent."""
    auth = {"Authorization": f"Bearer {api_key}"}
    url = f"{service_url}/weather"
    budget = PRICE_ATOMIC * (samples + warmup + 1)
    r = await api.post(
        "/v1/x402/sessions",
        json={
            "wallet_id": wallet_id,
            "budget": f"{budget / 10**decimals:.{decimals}f}",
            "max_price": f"{PRICE_ATOMIC / 10**decimals:.{decimals}f}",
            "ttl_seconds": 900,
            "origins": [service_url],
        },
        headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    if r.status_code != 201 or r.json()["status"] != "active":
        raise RuntimeError(f"session start answered {r.status_code}: {r.text[:300]}")
    sid = r.json()["id"]
    direct: list[float] = []
    session: list[float] = []
    try:
        async with direct_client(payer, chain_id, token) as sdk:
            for i in range(samples + warmup):
                started = time.perf_counter()
                got = await sdk.get(url)
                took = time.perf_counter() - started
                if got.status_code != 200:
                    raise RuntimeError(f"direct x402 fetch answered {got.status_code}: {got.text[:300]}")
                if i >= warmup:
                    direct.append(took)
                started = time.perf_counter()
                got = await api.post(f"/v1/x402/sessions/{sid}/fetch", json={"url": url}, headers=auth)
                took = time.perf_counter() - started
                if got.status_code != 200 or not got.json().get("paid"):
                    raise RuntimeError(f"session fetch answered {got.status_code}: {got.text[:300]}")
                if i >= warmup:
                    session.append(took)
    finally:
        await api.delete(f"/v1/x402/sessions/{sid}", headers=auth)
    d, s = _p50_ms(direct), _p50_ms(session)
    return {"direct_sdk_p50_ms": d, "session_fetch_p50_ms": s, "session_vs_direct": s / d, "samples": samples}


async def main(args: argparse.Namespace) -> dict:

    from paygent.chain.anvil import dev_account
    from paygent.chain.token import mint
    from paygent.paths import dev_json_path

    dev = json.loads(dev_json_path().read_text())
    payer = __import__("eth_account").Account.create()
    w3 = async_web3(dev["rpc_url"])
    await mint(w3, dev["token"]["address"], dev_account(0), payer.address, PRICE_ATOMIC * (args.samples + 5))
    async with httpx.AsyncClient(base_url=dev["api_url"], timeout=60) as api:
        return await session_vs_direct(
            api,
            dev["users"]["alice"]["api_key"],
            dev["wallets"]["treasury"]["id"],
            dev["x402_service_url"],
            payer,
            chain_id=dev["chain_id"],
            token=dev["token"]["address"],
            samples=args.samples,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    figures = asyncio.run(main(parser.parse_args()))
    print(
        f"x402 session fetch p50 {figures['session_fetch_p50_ms']:.0f} ms vs direct SDK p50 "
        f"{figures['direct_sdk_p50_ms']:.0f} ms: {figures['session_vs_direct']:.2f}x (target <= 1.5x)"
    )
    sys.stdout.flush()
    os._exit(0)  # temporalio/sdk-python#300
