"""`paygent agents ...` and `paygent pay` as an operator and an agent run them: real subprocesses speaking HTTP to
the real API; refusals end with exit code 1 and the server's reason."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid

from tests.api.helpers import new_recipient, token_balance


async def cli(api_url: str, key: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "paygent.cli", *args, "--api-url", api_url, "--api-key", key]
    return await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=90)


async def test_create_list_show_pay_rotate_disable_from_the_cli(api_url, dev, app_settings):
    alice, erin = dev["users"]["alice"]["api_key"], dev["users"]["erin"]["api_key"]
    treasury = dev["wallets"]["treasury"]["id"]
    name = f"cli-{uuid.uuid4().hex[:6]}"
    made = await cli(api_url, alice, "agents", "create", name, "--wallet", treasury, "--cap", "3", "--daily", "5")
    assert made.returncode == 0, made.stderr
    agent_id = re.search(r"id ([0-9a-f-]{36})", made.stdout).group(1)
    key = re.search(r"\(shown once\): (pgk_\S+)", made.stdout).group(1)

    listed = await cli(api_url, erin, "agents", "list")  # auditors read
    assert listed.returncode == 0 and name in listed.stdout and "owner alice" in listed.stdout, listed
    shown = await cli(api_url, alice, "agents", "show", agent_id)
    assert shown.returncode == 0 and '"per_payment_cap_atomic": 3000000' in shown.stdout, shown
    assert '"summary": "at most 3 USDC a payment; at most 5 USDC per 24 hours (daily)"' in shown.stdout, shown
    refused = await cli(api_url, erin, "agents", "create", "nope")
    assert refused.returncode == 1 and "403" in refused.stderr and "admin role" in refused.stderr, refused

    to = new_recipient()
    paid = await cli(api_url, key, "pay", "--wallet", treasury, "--to", to, "--amount", "2")
    assert paid.returncode == 0 and "confirmed" in paid.stdout, (paid.stdout, paid.stderr)
    over = await cli(api_url, key, "pay", "--wallet", treasury, "--to", to, "--amount", "4")  # over its cap
    assert over.returncode == 1 and "refused agent:per_payment_cap" in over.stdout, (over.stdout, over.stderr)
    assert "4 USDC exceeds the per-payment cap of 3 USDC" in over.stdout, over.stdout
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 2 * 10**6

    rotated = await cli(api_url, alice, "agents", "rotate-key", agent_id)
    assert rotated.returncode == 0, rotated.stderr
    stale = await cli(api_url, key, "pay", "--wallet", treasury, "--to", to, "--amount", "1")
    assert stale.returncode == 1 and "401" in stale.stderr, stale
    disabled = await cli(api_url, alice, "agents", "disable", agent_id)
    assert disabled.returncode == 0 and "disabled" in disabled.stdout, disabled
