"""Uniswap V2 on the dev chain: factory, WETH9 and router (through `ensure_contract`, like the token) and a seeded
USDC/EURC pool at a known price. Idempotent: a second `up` reuses what the chain shows, and tops the pool up only
when it holds no liquidity.

dev.json gains `swap: {router, factory, weth, pair, tokens: {EURC: {address, decimals}}}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from paygent.chain.rpc import async_web3
from paygent.stack.chain_pieces import ContractPiece, ensure_contract

# The seeded pool: 1,000,000 USDC against 920,000 EURC (1 USDC = 0.92 EURC), in token units.
POOL_USDC = 1_000_000
POOL_EURC = 920_000


def _pieces(deployer) -> tuple[Callable[..., ContractPiece], ...]:
    from paygent.chain import uniswap

    def weth() -> ContractPiece:
        return ContractPiece(
            "weth", uniswap.artifact("weth")["abi"], {"symbol": "WETH"}, lambda w3: uniswap.deploy_weth(w3, deployer)
        )

    def factory() -> ContractPiece:
        return ContractPiece(
            "factory",
            uniswap.artifact("factory")["abi"],
            {"feeToSetter": deployer.address},
            lambda w3: uniswap.deploy_factory(w3, deployer),
        )

    def router(factory_address: str, weth_address: str) -> ContractPiece:
        return ContractPiece(
            "router",
            uniswap.artifact("router")["abi"],
            {"factory": factory_address, "WETH": weth_address},
            lambda w3: uniswap.deploy_router(w3, deployer, factory_address, weth_address),
        )

    return weth, factory, router


async def ensure_swap(
    w3,
    existing: dict[str, Any] | None,
    usdc: dict[str, Any],
    eurc: dict[str, Any],
    *,
    in_flight: Callable[[], Awaitable[int]],
) -> tuple[dict[str, Any], list[str]]:
    """(dev.json's `swap`, what was done). The router is redeployed when its factory or WETH moved."""
    from eth_utils import to_checksum_address

    from paygent.chain import uniswap
    from paygent.chain.anvil import dev_account
    from paygent.chain.token import balance_of, mint

    deployer = dev_account(0)
    recorded = (existing or {}).get("swap") or {}
    weth_piece, factory_piece, router_piece = _pieces(deployer)
    done: list[str] = []
    weth, how = await ensure_contract(w3, weth_piece(), recorded.get("weth"), in_flight=in_flight)
    done.append(f"WETH9 {how} at {weth}")
    factory, how = await ensure_contract(w3, factory_piece(), recorded.get("factory"), in_flight=in_flight)
    done.append(f"factory {how} at {factory}")
    router, how = await ensure_contract(w3, router_piece(factory, weth), recorded.get("router"), in_flight=in_flight)
    done.append(f"router {how} at {router}")
    pair = uniswap.pair_address(factory, usdc["address"], eurc["address"])
    try:
        pool = await uniswap.quote(w3, router, factory, usdc["address"], eurc["address"], 10 ** usdc["decimals"])
        seeded = pool.reserve_in > 0
    except uniswap.NoPool:
        seeded = False
    if not seeded:
        amount_usdc, amount_eurc = POOL_USDC * 10 ** usdc["decimals"], POOL_EURC * 10 ** eurc["decimals"]
        for token, amount in ((usdc, amount_usdc), (eurc, amount_eurc)):
            have = await balance_of(w3, token["address"], deployer.address)
            if have < amount:
                await mint(w3, token["address"], deployer, deployer.address, amount - have)
        await uniswap.add_liquidity(w3, deployer, router, usdc["address"], amount_usdc, eurc["address"], amount_eurc)
        done.append(f"pool {usdc['symbol']}/{eurc['symbol']} seeded at {pair}: {POOL_USDC:,} / {POOL_EURC:,}")
    else:
        done.append(f"pool {usdc['symbol']}/{eurc['symbol']} at {pair}")
    swap = {
        "router": router,
        "factory": factory,
        "weth": weth,
        "pair": to_checksum_address(pair),
        "tokens": {eurc["symbol"]: {"address": eurc["address"], "decimals": eurc["decimals"]}},
    }
    return swap, done


def provision_swap(rpc_url: str, database_url: str, existing: dict[str, Any] | None, tokens: dict[str, Any]):
    """`up`'s swap step, in its own event loop: (dev.json's `swap`, lines to print). Needs USDC and EURC."""
    import asyncio

    from paygent.stack.processes import StackError
    from paygent.stack.provision import payments_in_flight

    if "USDC" not in tokens or "EURC" not in tokens:
        raise StackError("swap: the dev stack's tokens must include USDC and EURC")

    async def run():

        from paygent.db.engine import dispose_all

        w3 = async_web3(rpc_url)
        try:
            return await ensure_swap(
                w3, existing, tokens["USDC"], tokens["EURC"], in_flight=lambda: payments_in_flight(database_url)
            )
        finally:
            await w3.provider.disconnect()
            await dispose_all()

    return asyncio.run(run())
