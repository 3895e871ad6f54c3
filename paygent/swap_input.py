"""What a swap request must be before anything is recorded, and the quote every door reads (one check, one quote).

The HTTP API, the MCP tools and agent runs call `check_swap_input` once they know the paying wallet, then
`quote_swap` (the chain: getAmountsOut and the reserves at one block) and record only what passed. A refusal is an
`InvalidInput` naming the field (unknown token, the same token on both sides, amount 0 or over-precise, slippage
over the policy, no pool for the pair); nothing has been recorded, started or signed by then.

Assets a swap may name: the configured token, plus `swap_tokens` (dev.json's `swap.tokens`); the swap policy
(paygent/domain/swap.py `SwapPolicy`) from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import to_checksum_address
from web3 import AsyncWeb3

from paygent.chain import uniswap
from paygent.domain.errors import InvalidInput
from paygent.domain.money import parse_amount
from paygent.domain.swap import (
    DEFAULT_SLIPPAGE_BPS,
    Quote,
    SwapPolicy,
    SwapRefused,
    check_allowlist,
    check_deadline,
    check_slippage,
    guard_quote,
)
from paygent.payment_input import AssetUnavailable
from paygent.settings import Settings


@dataclass(frozen=True)
class SwapAsset:
    symbol: str
    address: str
    decimals: int


def swap_assets(settings: Settings) -> dict[str, SwapAsset]:
    """Symbol (upper case) -> asset, for every token a swap may name on this chain: the asset registry's
    (paygent/assets.py: the configured token, EURC...), plus `swap_tokens` the registry does not list."""
    out: dict[str, SwapAsset] = {
        a.symbol.upper(): SwapAsset(a.symbol, a.address, a.decimals)
        for a in settings.asset_registry().on_chain(settings.chain_id)
    }
    for symbol, token in settings.swap_tokens.items():
        if token.get("address") and symbol.upper() not in out:
            out[symbol.upper()] = SwapAsset(symbol, to_checksum_address(token["address"]), int(token["decimals"]))
    return out


def swap_policy(settings: Settings) -> SwapPolicy:
    return SwapPolicy(
        max_slippage_bps=settings.swap_max_slippage_bps,
        max_price_impact_bps=settings.swap_max_price_impact_bps,
        deadline_seconds=settings.swap_deadline_seconds,
        allowed_assets=frozenset(a.symbol for a in swap_assets(settings).values()),
    )


def router_of(settings: Settings) -> tuple[str, str]:
    """(router, factory) of this chain (the asset registry's), or AssetUnavailable (503) when none is configured."""
    chain = settings.asset_registry().chain(settings.chain_id)
    if not chain.router or not chain.factory:
        raise AssetUnavailable("to_asset", "no swap router is configured on this server")
    return to_checksum_address(chain.router), to_checksum_address(chain.factory)


@dataclass(frozen=True)
class SwapInput:
    asset_in: SwapAsset
    asset_out: SwapAsset
    amount_in: int
    slippage_bps: int
    router: str
    factory: str


def _asset(assets: dict[str, SwapAsset], symbol: object, field: str) -> SwapAsset:
    if not isinstance(symbol, str) or symbol.upper() not in assets:
        known = ", ".join(sorted(a.symbol for a in assets.values())) or "none"
        raise InvalidInput(field, f"unknown asset {symbol!r}; known: {known}")
    return assets[symbol.upper()]


def check_swap_input(
    settings: Settings, from_asset: object, to_asset: object, amount: object, slippage_bps: object = None
) -> SwapInput:
    router, factory = router_of(settings)
    assets = swap_assets(settings)
    asset_in = _asset(assets, from_asset, "from_asset")
    asset_out = _asset(assets, to_asset, "to_asset")
    if asset_in.address == asset_out.address:
        raise InvalidInput("to_asset", f"is the same asset as from_asset ({asset_in.symbol}): nothing to swap")
    amount_in = parse_amount(amount, asset_in.decimals)
    if slippage_bps is None:
        slippage_bps = DEFAULT_SLIPPAGE_BPS
    if isinstance(slippage_bps, bool) or not isinstance(slippage_bps, int):
        raise InvalidInput("slippage_bps", "must be an integer number of basis points (50 = 0.5%)")
    policy = swap_policy(settings)
    try:
        check_slippage(slippage_bps, policy)
        check_deadline(policy.deadline_seconds)
        check_allowlist([asset_in.symbol, asset_out.symbol], policy)
    except SwapRefused as refused:
        raise InvalidInput(refused.field or "to_asset", refused.message) from None
    return SwapInput(asset_in, asset_out, amount_in, slippage_bps, router, factory)


@dataclass(frozen=True)
class SwapQuote:
    quote: Quote
    pair: str
    block_number: int
    block_timestamp: int


async def quote_swap(w3: AsyncWeb3, settings: Settings, checked: SwapInput) -> SwapQuote:
    """getAmountsOut and the reserves at one block, guarded (price impact); InvalidInput naming the field when the
    pool is missing or the guard refuses."""
    try:
        pool = await uniswap.quote(
            w3, checked.router, checked.factory, checked.asset_in.address, checked.asset_out.address, checked.amount_in
        )
    except uniswap.NoPool as exc:
        raise InvalidInput(
            "to_asset", f"no pool for {checked.asset_in.symbol}/{checked.asset_out.symbol}: {exc}"
        ) from None
    try:
        quote = guard_quote(
            checked.amount_in,
            pool.amount_out,
            pool.reserve_in,
            pool.reserve_out,
            checked.slippage_bps,
            swap_policy(settings),
        )
    except SwapRefused as refused:
        raise InvalidInput(refused.field or "amount", f"{refused.guard}: {refused.message}") from None
    return SwapQuote(quote=quote, pair=pool.pair, block_number=pool.block_number, block_timestamp=pool.block_timestamp)
