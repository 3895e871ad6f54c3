"""The swap rules, pure: quote arithmetic as Uniswap V2's library does it, price impact, minimum, guards, hash."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paygent.domain.operation_hash import Operation, SwapTerms, operation_hash
from paygent.domain.swap import (
    Guard,
    SwapPolicy,
    SwapRefused,
    amount_out,
    check_allowlist,
    check_deadline,
    check_requote,
    check_slippage,
    format_bps,
    guard_quote,
    min_amount_out,
    price_impact_bps,
    swap_summary,
)

reserves = st.integers(min_value=10**3, max_value=10**30)
amounts = st.integers(min_value=1, max_value=10**24)


def test_amount_out_matches_uniswap_library_figures():
    # 10 USDC into 1,000,000 USDC / 920,000 EURC: 9.2 EURC at the mid price, less the 0.3% fee and the move
    assert amount_out(10_000_000, 1_000_000 * 10**6, 920_000 * 10**6) == 9_172_308


@given(amounts, reserves, reserves)
def test_amount_out_never_beats_the_mid_price_less_the_fee(amount_in, r_in, r_out):
    out = amount_out(amount_in, r_in, r_out)
    assert 0 <= out < r_out
    assert Fraction(out) <= Fraction(amount_in * r_out * 997, r_in * 1000)


@given(amounts, reserves, reserves)
def test_price_impact_is_at_least_the_fee_and_rounds_up(amount_in, r_in, r_out):
    out = amount_out(amount_in, r_in, r_out)
    impact = price_impact_bps(amount_in, out, r_in, r_out)
    exact = 1 - Fraction(out * r_in, amount_in * r_out)
    assert impact >= 30 or out == 0 and impact == 10_000
    assert Fraction(impact, 10_000) >= exact > Fraction(impact - 1, 10_000)


@given(st.integers(min_value=0, max_value=10**30), st.integers(min_value=0, max_value=10_000))
def test_min_amount_out_is_below_the_quote_by_at_most_the_slippage(quoted, bps):
    minimum = min_amount_out(quoted, bps)
    assert minimum <= quoted
    assert quoted - minimum <= quoted * bps // 10_000 + 1


def test_guards_name_themselves_and_the_figures():
    policy = SwapPolicy(max_slippage_bps=100, max_price_impact_bps=100, allowed_assets=frozenset({"USDC", "EURC"}))
    with pytest.raises(SwapRefused) as err:
        check_slippage(101, policy)
    assert (err.value.guard, err.value.field) == (Guard.slippage, "slippage_bps") and "maximum of 100" in str(err.value)
    with pytest.raises(SwapRefused, match="allowed: EURC, USDC"):
        check_allowlist(["USDC", "DAI"], policy)
    with pytest.raises(SwapRefused, match="within 1-300 s"):
        check_deadline(301)
    # 200,000 USDC into a 1,000,000 USDC pool: about 16.9% below the mid price
    r_in, r_out = 1_000_000 * 10**6, 920_000 * 10**6
    big = 200_000 * 10**6
    with pytest.raises(SwapRefused) as err:
        guard_quote(big, amount_out(big, r_in, r_out), r_in, r_out, 50, policy)
    assert err.value.guard == Guard.price_impact and "exceeds the policy's cap of 1%" in err.value.message
    q = guard_quote(10_000_000, 9_172_308, r_in, r_out, 50, policy)
    assert (q.min_amount_out, q.price_impact_bps) == (9_126_446, 31)
    with pytest.raises(SwapRefused, match="below the minimum of 9.126446 EURC"):
        check_requote(9_000_000, q.min_amount_out, 6, "EURC")


def test_summary_and_bps_text():
    assert format_bps(30) == "0.3%" and format_bps(150) == "1.5%" and format_bps(100) == "1%"
    assert (
        swap_summary("10", "USDC", "9.95", "EURC", 30, "Uniswap V2")
        == "Swap 10 USDC -> >= 9.95 EURC via Uniswap V2 (0.3% impact)"
    )


OP = dict(
    chain_id=31337,
    wallet_id="7c8f1d8e-9f62-4c1c-8f0e-2b8a4f1d0a11",
    asset="USDC",
    token_address="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    to="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    amount_atomic=10_000_000,
    payment_id="p1",
)
TERMS = dict(
    asset_out="EURC",
    token_out="0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    min_amount_out=9_126_446,
    max_price_impact_bps=100,
    router="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
)


def test_a_transfers_hash_is_unchanged_by_swaps():
    # the hash a transfer had before swaps existed (tests/domain/test_operation_hash.py pins others)
    assert operation_hash(Operation(**OP)) == operation_hash(Operation(**OP, swap=None))


@pytest.mark.parametrize(
    "change",
    [
        {"asset_out": "DAI"},
        {"min_amount_out": 9_126_445},
        {"max_price_impact_bps": 101},
        {"router": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"},
        {"token_out": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"},
    ],
)
def test_the_swap_hash_covers_its_terms(change):
    base = Operation(**OP, swap=SwapTerms(**TERMS))
    assert operation_hash(base) != operation_hash(Operation(**OP))
    assert operation_hash(base) != operation_hash(Operation(**OP, swap=SwapTerms(**{**TERMS, **change})))
    assert operation_hash(base) != operation_hash(Operation(**{**OP, "amount_atomic": 10_000_001}, swap=base.swap))


def test_the_swap_hash_leaves_out_the_quote():
    base = Operation(**OP, swap=SwapTerms(**TERMS))
    requoted = Operation(**OP, swap=SwapTerms(**TERMS, quoted_amount_out=9_200_000, price_impact_bps=31))
    assert operation_hash(base) == operation_hash(requoted)
