"""Swap rules, pure: the constant-product quote, price impact, the minimum output and the guards.

No I/O and no Temporal: the API's quote, the workflow's guard and re-quote, and the tests all use these. Amounts
are int atomic units; basis points are ints (1 bp = 0.01%). A refusal is a `SwapRefused` naming the guard and the
figures, as a person reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from paygent.domain.money import format_money

BPS = 10_000
FEE_NUMERATOR, FEE_DENOMINATOR = 997, 1000  # Uniswap V2's 0.3% LP fee, as UniswapV2Library.getAmountOut
DEFAULT_SLIPPAGE_BPS = 50
DEFAULT_DEADLINE_SECONDS = 120
MAX_DEADLINE_SECONDS = 300


class Guard:
    """The guards' names, as refusals and audit rows spell them."""

    slippage = "slippage"
    price_impact = "price_impact"
    deadline = "deadline"
    allowlist = "allowlist"
    requote = "requote"
    no_pool = "no_pool"


class SwapRefused(ValueError):
    def __init__(self, guard: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{guard}: {message}")
        self.guard = guard
        self.message = message
        self.field = field  # the request field the refusal is about, when a caller chose it


@dataclass(frozen=True)
class SwapPolicy:
    """What a swap may be: the maximum slippage a caller may ask for, the price-impact cap, the deadline and the
    assets a path may touch (symbols)."""

    max_slippage_bps: int = 100
    max_price_impact_bps: int = 100
    deadline_seconds: int = DEFAULT_DEADLINE_SECONDS
    allowed_assets: frozenset[str] = frozenset()


def amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """UniswapV2Library.getAmountOut: the output for `amount_in`, fee included, rounded down."""
    if amount_in <= 0 or reserve_in <= 0 or reserve_out <= 0:
        raise ValueError("amount and reserves must be positive")
    with_fee = amount_in * FEE_NUMERATOR
    return (with_fee * reserve_out) // (reserve_in * FEE_DENOMINATOR + with_fee)


def price_impact_bps(amount_in: int, quoted_out: int, reserve_in: int, reserve_out: int) -> int:
    """How far the quote is below the pool's mid price, fee included (as the Uniswap V2 SDK's Trade.priceImpact),
    in basis points rounded up: 1 - quoted_out / (amount_in * reserve_out / reserve_in)."""
    ideal = amount_in * reserve_out  # over reserve_in
    shortfall = ideal - quoted_out * reserve_in
    if shortfall <= 0:
        return 0
    return -((-shortfall * BPS) // ideal)  # ceiling division


def min_amount_out(quoted_out: int, slippage_bps: int) -> int:
    """The quote less `slippage_bps`, rounded down (the router refuses anything below it)."""
    return quoted_out * (BPS - slippage_bps) // BPS


def check_slippage(slippage_bps: int, policy: SwapPolicy) -> None:
    if slippage_bps < 0:
        raise SwapRefused(Guard.slippage, f"slippage_bps {slippage_bps} is negative", "slippage_bps")
    if slippage_bps > policy.max_slippage_bps:
        raise SwapRefused(
            Guard.slippage,
            f"slippage_bps {slippage_bps} exceeds the policy's maximum of {policy.max_slippage_bps}",
            "slippage_bps",
        )


def check_deadline(deadline_seconds: int) -> None:
    if not 0 < deadline_seconds <= MAX_DEADLINE_SECONDS:
        raise SwapRefused(
            Guard.deadline, f"deadline of {deadline_seconds} s is not within 1-{MAX_DEADLINE_SECONDS} s", "deadline"
        )


def check_allowlist(path: list[str], policy: SwapPolicy) -> None:
    for symbol in path:
        if symbol not in policy.allowed_assets:
            known = ", ".join(sorted(policy.allowed_assets)) or "none"
            raise SwapRefused(Guard.allowlist, f"{symbol} is not an allowed swap asset (allowed: {known})")


@dataclass(frozen=True)
class Quote:
    amount_in: int
    amount_out: int
    min_amount_out: int
    price_impact_bps: int
    reserve_in: int
    reserve_out: int


def guard_quote(
    amount_in: int, quoted_out: int, reserve_in: int, reserve_out: int, slippage_bps: int, policy: SwapPolicy
) -> Quote:
    """The quote with its minimum, or SwapRefused when the price impact passes the policy's cap."""
    check_slippage(slippage_bps, policy)
    if quoted_out <= 0:
        raise SwapRefused(Guard.price_impact, f"the pool would give nothing for {amount_in} atomic units", "amount")
    impact = price_impact_bps(amount_in, quoted_out, reserve_in, reserve_out)
    if impact > policy.max_price_impact_bps:
        raise SwapRefused(
            Guard.price_impact,
            f"price impact {format_bps(impact)} exceeds the policy's cap of {format_bps(policy.max_price_impact_bps)}"
            f" (reserves {reserve_in} in / {reserve_out} out)",
            "amount",
        )
    return Quote(
        amount_in=amount_in,
        amount_out=quoted_out,
        min_amount_out=min_amount_out(quoted_out, slippage_bps),
        price_impact_bps=impact,
        reserve_in=reserve_in,
        reserve_out=reserve_out,
    )


def check_requote(new_out: int, minimum: int, decimals_out: int, symbol_out: str) -> None:
    """Just before signing: a price that moved past the bound stops the swap with nothing signed."""
    if new_out < minimum:
        raise SwapRefused(
            Guard.requote,
            f"the price moved: the pool now gives {format_money(new_out, decimals_out, symbol_out)}, below the "
            f"minimum of {format_money(minimum, decimals_out, symbol_out)}",
        )


def format_bps(bps: int) -> str:
    """150 -> '1.5%'."""
    whole, frac = divmod(bps, 100)
    return f"{whole}.{str(frac).rjust(2, '0').rstrip('0')}%" if frac else f"{whole}%"


def swap_summary(amount_in: str, asset_in: str, min_out: str, asset_out: str, impact_bps: int, router: str) -> str:
    """The Temporal UI's summary line: 'Swap 10 USDC -> >= 9.95 EURC via Uniswap V2 (0.3% impact)'."""
    return f"Swap {amount_in} {asset_in} -> >= {min_out} {asset_out} via {router} ({format_bps(impact_bps)} impact)"
