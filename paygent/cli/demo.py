"""`paygent demo`: a payment through the API, watched until it settles on chain, with links to Temporal's UI;
a swap on the Uniswap V2 router (quote, minimum, balances before and after); then an agent run streamed over the
WebSocket.

It uses only what a client has: `.paygent/dev.json` (API URL, keys, wallet ids) and the public chain RPC.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid

import httpx
from eth_account import Account

from paygent.chain.rpc import async_web3
from paygent.chain.token import balance_of
from paygent.cli.demo_mcp import mcp_payment
from paygent.cli.demo_swap import swap_and_watch
from paygent.cli.demo_ws import stream_run_over_websocket
from paygent.domain.money import format_amount
from paygent.domain.payment import PAYMENT_TERMINAL, PaymentStatus
from paygent.paths import dev_json_path


def _load_dev() -> dict:
    path = dev_json_path()
    if not path.exists():
        raise SystemExit(f"{path} not found: run `paygent stack up` first")
    return json.loads(path.read_text())


async def _wait(http: httpx.AsyncClient, headers: dict, payment_id: str, timeout: float = 120) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        body = (await http.get(f"/v1/payments/{payment_id}", headers=headers)).json()
        if body["status"] != last:
            print(f"    status: {body['status']}")
            last = body["status"]
        if body["status"] in PAYMENT_TERMINAL:
            return body
        await asyncio.sleep(0.25)
    raise SystemExit(f"payment {payment_id} did not finish within {timeout:.0f}s (last status {last})")


async def pay_and_watch(
    http, dev, w3, *, amount: str, memo: str, as_user: str = "alice", budget_may_run_out: bool = False
) -> dict:
    token = dev["token"]
    treasury = dev["wallets"]["treasury"]
    to = Account.create().address
    principal = dev["users"].get(as_user) or dev.get("agents", {})[as_user]  # a person, or an agent's own key
    headers = {"Authorization": f"Bearer {principal['api_key']}"}
    before_from = await balance_of(w3, token["address"], treasury["address"])
    print(f"\n==> {as_user} pays {amount} {token['symbol']} from treasury to {to} ({memo})")
    r = await http.post(
        "/v1/payments",
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        json={"wallet_id": treasury["id"], "to": to, "amount": amount, "asset": token["symbol"], "memo": memo},
    )
    if r.status_code != 202:
        raise SystemExit(f"payment refused: HTTP {r.status_code} {r.text}")
    accepted = r.json()
    print(f"    accepted: payment {accepted['id']} (workflow {accepted['workflow_id']})")
    final = await _wait(http, headers, accepted["id"])
    after_from = await balance_of(w3, token["address"], treasury["address"])
    after_to = await balance_of(w3, token["address"], to)
    d = token["decimals"]
    print(f"    tx hash:  {final['tx_hash']} (block {final['block_number']})")
    print(f"    treasury: {format_amount(before_from, d)} -> {format_amount(after_from, d)} {token['symbol']}")
    print(f"    recipient: 0 -> {format_amount(after_to, d)} {token['symbol']}")
    print(f"    Temporal UI: {final['temporal_ui_url']}")
    if (
        budget_may_run_out
        and final["status"] == PaymentStatus.refused
        and (final["failure_reason"] or "").startswith("agent:")
    ):
        print(f"    refused by the agent's own budget (run the demo again tomorrow): {final['failure_reason']}")
        return final
    if final["status"] != PaymentStatus.confirmed:
        raise SystemExit(f"payment ended {final['status']}: {final['failure_reason']}")
    return final


async def fetch_paid(http, dev, *, url: str, max_amount: str, as_user: str = "alice") -> dict:
    """An x402 pay-per-request fetch through the API: the workflow probes, reserves, signs once, settles."""
    token = dev["token"]
    headers = {"Authorization": f"Bearer {dev['users'][as_user]['api_key']}"}
    print(f"\n==> {as_user} fetches {url}, paying with x402 up to {max_amount} {token['symbol']}")
    r = await http.post(
        "/v1/payments",
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        json={
            "kind": "x402",
            "wallet_id": dev["wallets"]["treasury"]["id"],
            "url": url,
            "max_amount": max_amount,
            "asset": token["symbol"],
            "memo": "demo: paid API call",
        },
    )
    if r.status_code != 202:
        raise SystemExit(f"x402 payment refused: HTTP {r.status_code} {r.text}")
    final = await _wait(http, headers, r.json()["id"])
    x402 = final.get("x402") or {}
    print(f"    paid:     {final['amount']} {token['symbol']} to {final['to']} (outcome {x402.get('outcome')})")
    print(f"    answer:   HTTP {x402.get('response_status')} {str(x402.get('response_body_excerpt'))[:120]}")
    print(f"    settled:  tx {(x402.get('receipt') or {}).get('transaction')}")
    print(f"    Temporal UI: {final['temporal_ui_url']}")
    if final["status"] != PaymentStatus.confirmed:
        raise SystemExit(f"x402 payment ended {final['status']}: {final['failure_reason']}")
    return final


DEMO_TIMELOCK_SECONDS = 10
APPROVERS = ["bob", "carol", "dave"]


def demo_policy() -> dict:
    """The dev tiers, with a 10-second time-lock (instead of 1 hour) so the demo can watch it run out."""
    day = 86_400
    return {
        "tiers": [
            {"max_amount": "100", "approvals_required": 0, "approvers": []},
            {"max_amount": "1000", "approvals_required": 1, "approvers": APPROVERS, "approval_timeout_seconds": day},
            {
                "max_amount": "10000",
                "approvals_required": 2,
                "approvers": APPROVERS,
                "approval_timeout_seconds": day,
                "timelock_seconds": DEMO_TIMELOCK_SECONDS,
            },
            {
                "max_amount": None,
                "approvals_required": 3,
                "approvers": APPROVERS,
                "approval_timeout_seconds": day,
                "timelock_seconds": DEMO_TIMELOCK_SECONDS,
            },
        ]
    }


def cli(*args: str) -> None:
    """Run a `paygent` CLI command as an operator would, and show it."""
    print(f"    $ paygent {' '.join(args)}")
    done = subprocess.run([sys.executable, "-m", "paygent.cli", *args], capture_output=True, text=True, timeout=60)
    for line in (done.stdout + done.stderr).strip().splitlines():
        print(f"      {line}")
    if done.returncode != 0:
        raise SystemExit(f"`paygent {' '.join(args)}` failed (exit {done.returncode})")


async def approved_payment(http, dev, w3) -> dict:
    """5,000 USDC from `ops`: 2 of {bob, carol, dave} approve from the CLI, then the time-lock, then the chain."""
    token = dev["token"]
    ops = dev["wallets"]["ops"]
    alice = {"Authorization": f"Bearer {dev['users']['alice']['api_key']}"}
    r = await http.put(f"/v1/wallets/{ops['id']}/approval-policy", headers=alice, json=demo_policy())
    if r.status_code != 200:
        raise SystemExit(f"could not set the demo approval policy: HTTP {r.status_code} {r.text}")
    to = Account.create().address
    before = await balance_of(w3, token["address"], ops["address"])
    print(
        f"\n==> alice pays 5000 {token['symbol']} from ops to {to}: the policy wants 2 of bob, carol, dave, "
        f"then a {DEMO_TIMELOCK_SECONDS}-second time-lock"
    )
    r = await http.post(
        "/v1/payments",
        headers={**alice, "Idempotency-Key": str(uuid.uuid4())},
        json={
            "wallet_id": ops["id"],
            "to": to,
            "amount": "5000",
            "asset": token["symbol"],
            "memo": "demo: supplier invoice, needs approval",
        },
    )
    if r.status_code != 202:
        raise SystemExit(f"payment refused: HTTP {r.status_code} {r.text}")
    pid = r.json()["id"]
    print(f"    accepted: payment {pid}")
    while (await http.get(f"/v1/payments/{pid}", headers=alice)).json()["status"] != PaymentStatus.awaiting_approval:
        await asyncio.sleep(0.2)
    print("    status: awaiting_approval")
    cli("approvals", "list", "--as", "bob")
    cli("approve", pid, "--as", "bob")
    cli("approve", pid, "--as", "carol")
    final = await _wait(http, alice, pid, timeout=DEMO_TIMELOCK_SECONDS + 60)
    approval = (await http.get(f"/v1/approvals/{pid}", headers=alice)).json()
    after = await balance_of(w3, token["address"], ops["address"])
    d = token["decimals"]
    print(f"    approved by: {', '.join(a['approver'] + ' via ' + a['channel'] for a in approval['approvals'])}")
    print(f"    time-lock until {approval.get('timelock_until')}; settled in block {final['block_number']}")
    print(f"    tx hash:  {final['tx_hash']}")
    print(f"    ops:      {format_amount(before, d)} -> {format_amount(after, d)} {token['symbol']}")
    print(f"    Temporal UI: {final['temporal_ui_url']}")
    print(f"    approval:    {dev['temporal_ui_url']}/namespaces/default/workflows/approval-{pid}")
    if final["status"] != PaymentStatus.confirmed:
        raise SystemExit(f"payment ended {final['status']}: {final['failure_reason']}")
    return final


async def run_demo() -> int:
    dev = _load_dev()
    w3 = async_web3(dev["rpc_url"])
    async with httpx.AsyncClient(base_url=dev["api_url"], timeout=30) as http:
        health = (await http.get("/readyz")).json()
        down = [k for k, v in health["components"].items() if v != "up"]
        if down:
            print(f"stack not healthy: {', '.join(down)} down; see `paygent stack status`")
            return 1
        print(f"Paygent demo against {dev['api_url']} (chain {dev['chain_id']}, token {dev['token']['address']})")
        await pay_and_watch(http, dev, w3, amount="25", memo="demo: small payment, no approval needed")
        if "shopper" in dev.get("agents", {}):
            await pay_and_watch(
                http,
                dev,
                w3,
                amount="2",
                as_user="shopper",
                budget_may_run_out=True,
                memo="demo: the agent `shopper` pays with its own key, within its 10 USDC daily budget",
            )
            await mcp_payment(dev)  # the same agent, through Paygent's MCP server
        if dev.get("x402_service_url"):
            await fetch_paid(http, dev, url=f"{dev['x402_service_url']}/weather", max_amount="0.05")
        if "ops" in dev["wallets"]:
            await approved_payment(http, dev, w3)
        if dev.get("swap"):
            await swap_and_watch(http, dev, w3)
        await stream_run_over_websocket(dev)
    print(
        f"\nAll payments in the Temporal UI: {dev['temporal_ui_url']}/namespaces/default/workflows"
        "?query=WorkflowType%3D%27PaymentWorkflow%27"
    )
    return 0
