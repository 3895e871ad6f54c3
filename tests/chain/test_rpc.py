"""paygent/chain/rpc.py against a real anvil: requests cancelled in flight (an activity timed out, a wait_for)
leave no lock behind, so the process's later requests, async and sync (the x402 SDK's facilitator), still answer.
web3's own AsyncHTTPProvider shares one threading.Lock across the process and can leave it held for ever when a
request is cancelled at the wrong moment (ethereum/web3.py issue 3867)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from web3 import Web3
from web3._utils.http_session_manager import HTTPSessionManager

from paygent.chain.rpc import async_web3


async def test_cancelled_requests_leave_no_lock_and_every_later_request_answers(anvil_rpc):
    w3 = async_web3(anvil_rpc)
    cancelled = 0
    for _ in range(30):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(w3.eth.block_number for _ in range(20))), 0.0005)
            continue
        cancelled += 1
    assert cancelled > 0  # requests really were cancelled in flight
    assert not HTTPSessionManager._lock.locked()  # the process-wide lock of web3's session managers is free
    sync = Web3(Web3.HTTPProvider(anvil_rpc))  # what the x402 SDK's facilitator uses
    assert await asyncio.wait_for(asyncio.to_thread(lambda: sync.eth.chain_id), 10) == 31337
    assert await asyncio.wait_for(w3.eth.chain_id, 10) == 31337
    assert len(await asyncio.wait_for(asyncio.gather(*(w3.eth.block_number for _ in range(50))), 10)) == 50


def test_no_code_builds_web3s_own_async_provider():
    """Every node connection goes through async_web3: one place to keep the lock away."""
    from paygent.paths import REPO_ROOT

    found = [
        f"{path.relative_to(REPO_ROOT)}:{n}"
        for top in ("activities", "api", "paygent", "workers", "workflows", "tests", "benchmarks")
        for path in (REPO_ROOT / top).rglob("*.py")
        if path.name != "rpc.py" and path != Path(__file__)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "AsyncHTTPProvider(" in line
    ]
    assert found == []
