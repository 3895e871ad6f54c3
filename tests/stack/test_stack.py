"""`paygent stack up|status|down` for real: a second stack in a temp PAYGENT_HOME on free ports.

Temporal, anvil, the worker, the API and a private Redis are started by the stack under test (REDIS_URL points
at a port where nothing answers, so the private-server path runs); Postgres is the machine's server with a
database of its own. The commands run as subprocesses, exactly as a developer types them.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from web3 import Web3

from paygent.chain import uniswap
from paygent.chain.token import token_abi
from paygent.netutil import free_port
from paygent.paths import REPO_ROOT
from paygent.stack.processes import pid_alive
from paygent.stack.services import plain_pg_url

ADMIN_URL = plain_pg_url(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
PIECES = ("postgres", "redis", "temporal", "temporal-ui", "anvil", "worker", "api", "x402")
OURS = ("redis", "temporal", "temporal-ui", "anvil", "worker", "api", "x402")


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Env for the second stack, and a runner for `paygent stack ...` in it; always brought down at the end."""
    home = tmp_path_factory.mktemp("stack-home")
    db = f"paygent_stack_{uuid.uuid4().hex[:8]}"
    temporal, ui, anvil, api, redis, dead_redis, pg, x402, worker_metrics = _free_ports(9)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PAYGENT_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        {
            "PAYGENT_HOME": str(home),
            "DATABASE_URL": f"{ADMIN_URL.rsplit('/', 1)[0]}/{db}",
            "REDIS_URL": f"redis://127.0.0.1:{dead_redis}/0",
            "PAYGENT_REDIS_PORT": str(redis),
            "PAYGENT_POSTGRES_PORT": str(pg),
            "PAYGENT_TEMPORAL_PORT": str(temporal),
            "PAYGENT_TEMPORAL_UI_PORT": str(ui),
            "PAYGENT_ANVIL_PORT": str(anvil),
            "PAYGENT_API_PORT": str(api),
            "PAYGENT_X402_PORT": str(x402),
            "PAYGENT_WORKER_METRICS_PORT": str(worker_metrics),
        }
    )

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "paygent.cli", "stack", *args],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"paygent stack {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    run.home = home
    run.ports = {
        "temporal": temporal,
        "ui": ui,
        "anvil": anvil,
        "api": api,
        "redis": redis,
        "worker_metrics": worker_metrics,
    }
    yield run
    run("down", check=False)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


def _status(stack) -> dict[str, dict]:
    return {p["name"]: p for p in json.loads(stack("status", "--json").stdout)}


def test_up_starts_every_piece_and_writes_dev_json(stack):
    out = stack("up").stdout
    for piece in (
        "postgres",
        "redis",
        "temporal",
        "anvil",
        "migrations",
        "token",
        "tenant",
        "worker",
        "api",
        "x402",
        "chain",
    ):
        assert f"  {piece} " in out, out
    assert "chain-31337 started: reconcile every 15s" in out, out  # follower + reconciler, one workflow
    dev_json = Path(stack.home) / "dev.json"
    dev = json.loads(dev_json.read_text())
    assert stat.S_IMODE(dev_json.stat().st_mode) == 0o600
    assert stat.S_IMODE((Path(stack.home) / "master.key").stat().st_mode) == 0o600
    assert dev["api_url"] == f"http://127.0.0.1:{stack.ports['api']}"
    assert dev["temporal_address"] == f"127.0.0.1:{stack.ports['temporal']}"
    assert dev["rpc_url"] == f"http://127.0.0.1:{stack.ports['anvil']}"
    assert dev["redis_url"] == f"redis://127.0.0.1:{stack.ports['redis']}/0"
    assert dev["token"]["symbol"] == "USDC" and dev["token"]["decimals"] == 6
    # the second token: its own contract, printed like the other pieces, funded like USDC
    usdc, eurc = dev["tokens"]["USDC"], dev["tokens"]["EURC"]
    assert usdc["address"] == dev["token"]["address"] and usdc["name"] == "Paygent USD"
    assert (eurc["symbol"], eurc["decimals"], eurc["name"]) == ("EURC", 6, "Paygent EUR")
    assert eurc["address"] != usdc["address"]
    assert f"USDC (6 decimals) at {usdc['address']}" in out and f"EURC (6 decimals) at {eurc['address']}" in out
    assert "treasury: minted 1000000 EURC" in out, out
    w3 = Web3(Web3.HTTPProvider(dev["rpc_url"]))
    contract = w3.eth.contract(address=eurc["address"], abi=token_abi())
    assert (contract.functions.name().call(), contract.functions.symbol().call()) == ("Paygent EUR", "EURC")
    treasury = dev["wallets"]["treasury"]["address"]
    assert contract.functions.balanceOf(treasury).call() == 1_000_000 * 10**6
    assert dev["confirmations"] == 1  # PAYGENT_CONFIRMATIONS unset: the default depth
    assert {"alice", "bob", "carol", "dave"} <= set(dev["users"]) and "treasury" in dev["wallets"]
    # Uniswap V2 (issue 21): router, factory, WETH9 and a seeded USDC/EURC pool, printed like the other pieces
    swap = dev["swap"]
    assert swap["tokens"] == {"EURC": {"address": eurc["address"], "decimals": 6}}
    for piece in ("router", "factory", "WETH9"):
        assert f"{piece} deployed at {swap[piece.lower().replace('weth9', 'weth')]}" in out, out
    assert f"pool USDC/EURC seeded at {swap['pair']}: 1,000,000 / 920,000" in out, out
    router = w3.eth.contract(address=swap["router"], abi=uniswap.artifact("router")["abi"])
    quoted = router.functions.getAmountsOut(10**6, [usdc["address"], eurc["address"]]).call()[-1]
    assert 915_000 < quoted < 920_000  # 1 USDC = 0.92 EURC, less the 0.3% fee
    for user in dev["users"].values():  # keys live in dev.json only, never on the terminal
        assert user["api_key"] not in out


def test_status_reports_each_piece_and_who_started_it(stack):
    status = _status(stack)
    assert set(status) == set(PIECES)
    assert all(p["up"] for p in status.values()), status
    for name in OURS:
        assert status[name]["owner"].startswith("stack (pid"), status[name]
    assert status["postgres"]["owner"] == "external"  # the machine's server, reused
    text = stack("status").stdout
    for name in PIECES:
        assert f"  {name} " in text


def test_status_prints_both_metrics_urls_and_they_answer(stack):
    api_metrics = f"http://127.0.0.1:{stack.ports['api']}/metrics"
    worker_metrics = f"http://127.0.0.1:{stack.ports['worker_metrics']}/metrics"
    text = stack("status").stdout
    assert f"metrics: API {api_metrics}  worker {worker_metrics}" in text
    assert "confirmations: 1 (chain 31337" in text
    assert "paygent_http_requests_total" in httpx.get(api_metrics, timeout=10).text
    assert "temporal_" in httpx.get(worker_metrics, timeout=10).text  # the SDK's own worker metrics


def test_the_stacks_api_and_worker_know_eurc(stack):
    """dev.json's `tokens` reach the API and the worker (their asset registry): EURC pays and shows."""
    dev = json.loads((Path(stack.home) / "dev.json").read_text())
    headers = {"Authorization": f"Bearer {dev['users']['alice']['api_key']}"}
    treasury = dev["wallets"]["treasury"]["id"]
    balance = httpx.get(f"{dev['api_url']}/v1/wallets/{treasury}/balance", headers=headers, timeout=10).json()
    assert [t["symbol"] for t in balance["tokens"]] == ["USDC", "EURC"], balance
    to = "0x52908400098527886E0F7030069857D2E4169EE7"
    r = httpx.post(
        f"{dev['api_url']}/v1/payments",
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        json={"wallet_id": treasury, "to": to, "amount": "0.25", "asset": "EURC"},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    for _ in range(300):
        paid = httpx.get(f"{dev['api_url']}/v1/payments/{r.json()['id']}", headers=headers, timeout=10).json()
        if paid["status"] in ("confirmed", "failed", "refused"):
            break
        time.sleep(0.2)
    assert paid["status"] == "confirmed" and paid["asset"] == "EURC", paid
    contract = Web3(Web3.HTTPProvider(dev["rpc_url"])).eth.contract(
        address=dev["tokens"]["EURC"]["address"], abi=token_abi()
    )
    assert contract.functions.balanceOf(to).call() == 250_000


def test_up_twice_is_idempotent(stack):
    before = json.loads((Path(stack.home) / "dev.json").read_text())
    pids = {n: p["owner"] for n, p in _status(stack).items()}
    assert "chain-31337 running: reconcile every 15s" in stack("up").stdout  # the same run goes on
    after = json.loads((Path(stack.home) / "dev.json").read_text())
    assert after["token"]["address"] == before["token"]["address"]
    assert after["tokens"] == before["tokens"]  # EURC too is reused, not deployed again
    assert after["swap"] == before["swap"]  # router, factory, WETH9 and the pool reused
    assert {n: u["api_key"] for n, u in after["users"].items()} == {n: u["api_key"] for n, u in before["users"].items()}
    assert after["wallets"] == before["wallets"]
    assert {n: p["owner"] for n, p in _status(stack).items()} == pids  # nothing restarted


def test_down_stops_only_what_it_started(stack):
    records = [json.loads(p.read_text()) for p in (Path(stack.home) / "run").glob("*.pid")]
    assert {r["name"] for r in records} == {"redis", "temporal", "anvil", "worker", "api", "x402"}
    out = stack("down").stdout
    assert "postgres" not in out  # the machine's server is not ours to stop
    for rec in records:
        assert not pid_alive(rec["pid"], rec["start_time"]), rec
    assert not list((Path(stack.home) / "run").glob("*.pid"))
    status = _status(stack)
    assert not any(status[name]["up"] for name in OURS), status
    assert status["postgres"]["up"]
    asyncio.run(_admin("SELECT 1"))  # the machine's Postgres still answers
    assert "nothing to stop" in stack("down").stdout
