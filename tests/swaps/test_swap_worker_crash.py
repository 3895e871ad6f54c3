"""The worker SIGKILLed at each step of a swap, then restarted: exactly one swap on chain, signed once.

The approve and the swap are signed with consecutive nonces and stored in ONE database transaction (activities/
swaps.py), so "after the approve is signed" and "after the swap is signed" are one moment: both stored, neither
sent (the proxy holds the first send). "After broadcast": both sent, not mined (automine off)."""

from __future__ import annotations

import subprocess
import uuid

import pytest
import sqlalchemy as sa

from paygent.chain.uniswap import SWAP_TOPIC
from paygent.db.schema import swap_transactions
from tests.api.helpers import funded_wallet, serve_api
from tests.api.rpc_proxy import RpcProxy
from tests.api.test_worker_crash import _kill, _wait_row, _worker_process
from tests.swaps import helpers as h


async def _swaps_to(rpc: str, pair: str, wallet: str) -> int:
    logs = await h.w3(rpc).eth.get_logs(
        {
            "fromBlock": 0,
            "toBlock": "latest",
            "address": pair,
            "topics": [SWAP_TOPIC, None, "0x" + "0" * 24 + wallet[2:].lower()],
        }
    )
    return len(logs)


@pytest.mark.parametrize("step", ["after_signing", "after_broadcast"])
async def test_sigkill_at_each_step_then_restart_swaps_exactly_once(
    step, app_settings, temporal_env, dev, db_engine, http, swap_dev, token_address, eurc_address
):
    settings = app_settings.model_copy(update={"task_queue": f"swapcrash-{uuid.uuid4().hex[:6]}"})
    wallet = await funded_wallet(http, dev, app_settings, 100)
    chain = h.w3(settings.rpc_url)
    procs: list[subprocess.Popen] = []
    async with RpcProxy(settings.rpc_url) as proxy:
        worker_settings = settings.model_copy(update={"rpc_url": proxy.url})
        procs.append(_worker_process(worker_settings))
        try:
            async with serve_api(settings, temporal_env.client) as api:
                body = {**h.body(dev, "25"), "wallet_id": wallet["id"]}
                if step == "after_signing":
                    proxy.hold_sends()  # both transactions stored, the node never gets them
                    r = await h.swap(api, dev, body)
                    assert r.status_code == 202, r.text
                    sid = r.json()["id"]
                    while proxy.held == 0:
                        await chain.eth.block_number  # yield
                    _kill(procs[0])
                    proxy.release_sends()
                else:
                    await chain.provider.make_request("evm_setAutomine", [False])
                    r = await h.swap(api, dev, body)
                    assert r.status_code == 202, r.text
                    sid = r.json()["id"]
                    await _wait_row(db_engine, sid, lambda p: p["status"] == "submitted")
                    _kill(procs[0])
                    await chain.provider.make_request("evm_setAutomine", [True])
                    await chain.provider.make_request("evm_mine", [])
                procs.append(_worker_process(worker_settings))
                final = await h.wait_swap(api, dev, sid, timeout=120)
        finally:
            await chain.provider.make_request("evm_setAutomine", [True])
            for proc in procs:
                if proc.poll() is None:
                    _kill(proc)
    assert final["status"] == "confirmed", final
    assert await _swaps_to(settings.rpc_url, swap_dev["pair"], wallet["address"]) == 1
    usdc, eurc = await h.balances(settings.rpc_url, token_address, eurc_address, wallet["address"])
    assert usdc == 75_000_000 and eurc == int(final["amount_out_atomic"])
    assert await h.allowance(settings.rpc_url, token_address, wallet["address"], swap_dev["router"]) == 0
    async with db_engine.connect() as conn:
        steps = (
            await conn.execute(
                sa.select(swap_transactions.c.step).where(swap_transactions.c.payment_id == uuid.UUID(sid))
            )
        ).scalars()
        assert sorted(steps) == ["approve", "swap"]  # signed once each, whatever the crash
    assert await h.ledger_sum(db_engine, wallet["id"], "EURC") == eurc
    assert await h.ledger_sum(db_engine, wallet["id"], "USDC") == -25_000_000
