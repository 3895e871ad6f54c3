"""`paygent x402 session ...` as a user runs it: a real subprocess speaking HTTP to the real API."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from tests.api.helpers import token_balance
from tests.x402.sessions import audit_rows


async def _cli(api_url: str, key: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "paygent.cli", "x402", "session", *args, "--api-url", api_url, "--api-key", key]
    return await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=60)


async def test_start_fetch_status_end_from_the_cli(api_url, dev, paid_service, app_settings, db_engine):
    alice, bob = dev["users"]["alice"]["api_key"], dev["users"]["bob"]["api_key"]
    wallet = dev["wallets"]["treasury"]["id"]
    refused = await _cli(api_url, bob, "start", "--budget", "0.05", "--origin", paid_service.url, "--wallet", wallet)
    assert refused.returncode == 1 and "403" in refused.stderr

    started = await _cli(
        api_url, alice, "start", "--budget", "0.05", "--max-price", "0.01", "--origin", paid_service.url,
        "--ttl", "60", "--wallet", wallet,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    session = json.loads(started.stdout)
    assert session["status"] == "active"

    fetched = await _cli(api_url, alice, "fetch", session["id"], f"{paid_service.url}/weather", "--body")
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(fetched.stdout)["forecast"] == "sunny" and "paid 0.01" in fetched.stderr

    capped = await _cli(api_url, alice, "fetch", session["id"], f"{paid_service.url}/premium")
    assert capped.returncode == 1 and "over_ceiling" in capped.stderr

    seen = json.loads((await _cli(api_url, alice, "status", session["id"])).stdout)
    assert seen["spent"] == "0.01" and len(seen["requests"]) == 1
    [paid] = await audit_rows(db_engine, seen["requests"][0]["payment_id"], "x402_session.paid")
    assert paid["channel"] == "cli"

    ended = await _cli(api_url, alice, "end", session["id"])
    assert ended.returncode == 0 and json.loads(ended.stdout)["status"] == "closed"
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 10_000
