"""`paygent stack up` run again on a live, loaded stack keeps the chain's pieces: with a payment in flight the
token and dev.json stay as they were, and with the chain answering slowly `up` stops with the reason instead of
deploying a new token. The stack's node is an anvil of this test behind tests/api/rpc_proxy.py (the stack sees
an external EVM node on its port); `paygent stack up` runs as a subprocess, as a developer types it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import httpx

from paygent.chain.anvil import dev_account, start_anvil
from paygent.chain.rpc import async_web3
from paygent.netutil import free_port
from paygent.paths import REPO_ROOT
from tests.api.rpc_proxy import RpcProxy
from tests.stack.test_stack import ADMIN_URL, _admin, _free_ports


async def _paygent(env: dict, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "paygent.cli",
        *args,
        env=env,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    return proc.returncode or 0, out.decode()


async def test_up_again_under_load_and_on_a_slow_chain_keeps_the_token_and_dev_json(tmp_path):
    anvil_port = free_port()
    anvil = start_anvil(anvil_port, chain_id=31337)
    db = f"paygent_stack_{uuid.uuid4().hex[:8]}"
    temporal, ui, api, redis, dead_redis, pg, x402, metrics = _free_ports(8)
    try:
        async with RpcProxy(f"http://127.0.0.1:{anvil_port}") as node:
            env = {k: v for k, v in os.environ.items() if not k.startswith("PAYGENT_") and k != "REDIS_URL"}
            env.update(
                {
                    "PAYGENT_HOME": str(tmp_path),
                    "DATABASE_URL": f"{ADMIN_URL.rsplit('/', 1)[0]}/{db}",
                    "REDIS_URL": f"redis://127.0.0.1:{dead_redis}/0",
                    "PAYGENT_REDIS_PORT": str(redis),
                    "PAYGENT_POSTGRES_PORT": str(pg),
                    "PAYGENT_TEMPORAL_PORT": str(temporal),
                    "PAYGENT_TEMPORAL_UI_PORT": str(ui),
                    "PAYGENT_ANVIL_PORT": str(node.port),
                    "PAYGENT_API_PORT": str(api),
                    "PAYGENT_X402_PORT": str(x402),
                    "PAYGENT_WORKER_METRICS_PORT": str(metrics),
                }
            )
            try:
                code, out = await _paygent(env, "stack", "up")
                assert code == 0, out
                dev_json = Path(tmp_path) / "dev.json"
                first = json.loads(dev_json.read_text())
                token = first["token"]["address"]
                w3 = async_web3(f"http://127.0.0.1:{anvil_port}")
                deployer_nonce = await w3.eth.get_transaction_count(dev_account(0).address)

                # a payment in flight: 500 USDC waits for an approver
                key = first["users"]["alice"]["api_key"]
                async with httpx.AsyncClient(base_url=first["api_url"], timeout=30) as http:
                    r = await http.post(
                        "/v1/payments",
                        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex},
                        json={
                            "wallet_id": first["wallets"]["treasury"]["id"],
                            "to": "0x52908400098527886E0F7030069857D2E4169EE7",
                            "amount": "500",
                            "asset": "USDC",
                        },
                    )
                    assert r.status_code == 202, r.text
                    pid = r.json()["id"]
                    for _ in range(100):
                        status = await http.get(f"/v1/payments/{pid}", headers={"Authorization": f"Bearer {key}"})
                        if status.json()["status"] == "awaiting_approval":
                            break
                        await asyncio.sleep(0.1)
                    assert status.json()["status"] == "awaiting_approval"

                code, out = await _paygent(env, "stack", "up")
                assert code == 0, out
                assert f"at {token}" in out
                assert json.loads(dev_json.read_text()) == first

                node.slow_calls(8.0)  # longer than the identity call's timeout, on every attempt
                code, out = await _paygent(env, "stack", "up")
                assert code != 0, out
                assert "did not answer symbol()" in out and "nothing was redeployed" in out, out
                assert json.loads(dev_json.read_text()) == first
                node.slow_calls(0)
                assert await w3.eth.get_transaction_count(dev_account(0).address) == deployer_nonce
                assert len(await w3.eth.get_code(token)) > 0
            finally:
                node.slow_calls(0)
                await _paygent(env, "stack", "down")
    finally:
        anvil.terminate()
        anvil.wait(timeout=10)
        await _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
