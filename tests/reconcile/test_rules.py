"""The reconciler's pure rules."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paygent.domain import reconcile as rules
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


def test_a_transfer_to_itself_is_both_legs_only_when_a_payment_made_it():
    w, other = "0xAbC0000000000000000000000000000000000001", "0x00000000000000000000000000000000000000ff"
    assert rules.legs(sender=w, receiver=w.lower(), wallet=w, matched_payment=True) == [
        (rules.Movement.PAYMENT, -1),
        (rules.Movement.SELF_CREDIT, 1),
    ]
    assert rules.legs(sender=w, receiver=w, wallet=w, matched_payment=False) == []  # it moved nothing
    assert rules.legs(sender=w, receiver=other, wallet=w, matched_payment=False) == [(rules.Movement.MISMATCH, -1)]
    assert rules.legs(sender=other, receiver=w, wallet=w, matched_payment=False) == [(rules.Movement.DEPOSIT, 1)]


def test_balance_comparison_names_every_cause_and_calls_the_rest_unexplained():
    clean = rules.compare_balances(asset="USDC", block_number=9, ledger=100, chain=90, in_flight=-10)
    assert clean.clean and clean.difference == -10  # a payment on chain its workflow has not booked yet
    stray = rules.Cause(rules.MismatchCause.TRANSFER_OUT_WITHOUT_PAYMENT, "movement:7", -30, movement_id=7)
    found = rules.compare_balances(asset="USDC", block_number=9, ledger=100, chain=75, named=[stray])
    assert [(c.cause, c.amount_atomic) for c in found.causes] == [
        (rules.MismatchCause.TRANSFER_OUT_WITHOUT_PAYMENT, -30),
        (rules.MismatchCause.UNEXPLAINED, 5),
    ]
    assert found.causes[1].key == "unexplained:5"  # another figure is another mismatch
    assert rules.compare_balances(asset="ETH", block_number=9, ledger=5, chain=5, named=[]).clean


@given(
    ledger=st.integers(0, 2**256 - 1),
    chain=st.integers(0, 2**256 - 1),
    in_flight=st.integers(-(2**64), 2**64),
    named=st.lists(st.integers(-(2**64), 2**64), max_size=4),
)
def test_the_causes_and_what_is_in_flight_always_add_up_to_the_difference(ledger, chain, in_flight, named):
    causes = [
        rules.Cause(rules.MismatchCause.TRANSFER_OUT_WITHOUT_PAYMENT, f"movement:{i}", a) for i, a in enumerate(named)
    ]
    found = rules.compare_balances(
        asset="USDC", block_number=1, ledger=ledger, chain=chain, in_flight=in_flight, named=causes
    )
    assert sum(c.amount_atomic for c in found.causes) + in_flight == chain - ledger
    assert all(c.amount_atomic for c in found.causes)  # nothing is recorded for a zero share
    assert found.clean == (chain - ledger == in_flight and not any(named))
