"""`paygent wallets ...` as an operator runs it: a real subprocess speaking HTTP to the real API."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid

from tests.api.helpers import auth, create, new_recipient, wait_final


async def _cli(api_url: str, key: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "paygent.cli", "wallets", *args, "--api-url", api_url, "--api-key", key]
    return await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=60)


async def test_create_balance_and_limits_from_the_cli(api_url, http, dev):
    alice, bob = dev["users"]["alice"]["api_key"], dev["users"]["bob"]["api_key"]
    made = await _cli(api_url, alice, "create", f"cli-{uuid.uuid4().hex[:6]}")
    assert made.returncode == 0, made.stderr
    wallet_id = made.stdout.split("id ")[1].split(",")[0]
    assert "key" not in made.stdout.lower()

    balance = await _cli(api_url, alice, "balance", wallet_id)
    assert balance.returncode == 0 and "0 ETH, 0 USDC" in balance.stdout

    limited = await _cli(api_url, alice, "limits", wallet_id, "--cap", "2", "--daily", "10")
    assert limited.returncode == 0, limited.stderr
    policy = json.loads(limited.stdout)
    assert policy["per_payment_cap_atomic"] == 2_000_000 and policy["velocity"][0]["max_atomic"] == 10_000_000

    refused = await _cli(api_url, bob, "limits", wallet_id, "--cap", "100")  # not an admin
    assert refused.returncode == 1 and "403" in refused.stderr

    granted = await http.put(
        f"/v1/wallets/{wallet_id}/grants",
        headers=auth(dev),
        json={"grants": [{"principal_id": dev["users"]["alice"]["id"]}]},
    )
    assert granted.status_code == 200, granted.text
    r = await create(http, dev, {"wallet_id": wallet_id, "to": new_recipient(), "amount": "3", "asset": "USDC"})
    final = await wait_final(http, dev, r.json()["id"])
    assert final["status"] == "refused" and final["failure_reason"].startswith("per_payment_cap")
