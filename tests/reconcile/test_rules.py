"""The reconciler's pure rules."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paygent.domain.reconcile import (
    AuthorizationVerdict,
    Movement,
    authorization_verdict,
    classify,
    safe_head,
    scan_ranges,
    unexplained_native,
)


@given(st.integers(-1, 10_000), st.integers(-1, 20_000), st.integers(1, 3_000))
def test_scan_ranges_cover_the_new_blocks_once(checkpoint, head, batch):
    ranges = scan_ranges(checkpoint, head, batch)
    blocks = [b for first, last in ranges for b in range(first, last + 1)]
    assert blocks == list(range(checkpoint + 1, head + 1))
    assert all(last - first + 1 <= batch for first, last in ranges)


def test_safe_head_is_confirmations_deep():
    assert safe_head(100, 1) == 100 and safe_head(100, 3) == 98 and safe_head(0, 3) == -2


def test_movements_are_classified_by_direction_and_match():
    assert classify(outgoing=False, matched_payment=False) == Movement.DEPOSIT
    assert classify(outgoing=True, matched_payment=True) == Movement.PAYMENT
    assert classify(outgoing=True, matched_payment=False) == Movement.MISMATCH


def test_an_authorization_is_final_once_used_or_expired():
    assert authorization_verdict(used=True, valid_before=10, now=99) == AuthorizationVerdict.SETTLED
    assert authorization_verdict(used=False, valid_before=10, now=9) == AuthorizationVerdict.OPEN
    assert authorization_verdict(used=False, valid_before=10, now=10) == AuthorizationVerdict.EXPIRED


def test_native_change_not_explained_by_gas():
    assert unexplained_native(previous_balance=100, balance=70, explained=-30) == 0
    assert unexplained_native(previous_balance=100, balance=60, explained=-30) == -10
    assert unexplained_native(previous_balance=0, balance=10**18, explained=0) == 10**18
