"""FeeCache (paygent/chain/token.py) against a real anvil: within its ttl every caller, concurrent or not, gets the
fields of one read; after it, the next caller reads the node again and sees the base fee it now has."""

from __future__ import annotations

import asyncio

from web3 import AsyncWeb3

from paygent.chain.rpc import async_web3
from paygent.chain.token import FeeCache, fee_fields


async def _base_fee(w3: AsyncWeb3) -> int:
    return int((await w3.eth.get_block("latest"))["baseFeePerGas"])


async def test_one_read_per_ttl_shared_by_concurrent_callers_then_a_fresh_one(anvil_rpc):
    w3 = async_web3(anvil_rpc)
    await w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(7 * 10**9)])
    await w3.provider.make_request("evm_mine", [])
    cache = FeeCache(w3, ttl=0.5)
    first = await asyncio.gather(*(cache.get() for _ in range(20)))
    assert all(f is first[0] for f in first)  # one read answered all twenty
    assert first[0] == await fee_fields(w3)  # ... and it is what the node says

    await w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(9 * 10**9)])
    await w3.provider.make_request("evm_mine", [])
    assert await _base_fee(w3) == 9 * 10**9
    assert await cache.get() is first[0]  # within the ttl: the cached fields, not the new base fee

    await asyncio.sleep(0.6)
    fresh = await cache.get()
    assert fresh == await fee_fields(w3) and fresh["maxFeePerGas"] > first[0]["maxFeePerGas"]
