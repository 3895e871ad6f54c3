"""The finality rules: what a booked payment's transaction (or x402 authorization) has become after a reorg."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paygent.domain.finality import (
    FINALITY_WINDOW_BLOCKS,
    BookedVerdict,
    authorization_verdict,
    gap_nonce,
    rewind_to,
    transfer_verdict,
)

blocks = st.integers(min_value=0, max_value=10**9)
nonces = st.integers(min_value=0, max_value=10**6)


@given(block=blocks, moved=st.integers(min_value=1, max_value=100), mined=nonces, nonce=nonces)
def test_a_landed_transaction_is_canonical_where_booked_and_moved_elsewhere(block, moved, mined, nonce):
    assert transfer_verdict(landed_block=block, booked_block=block, mined_nonce=mined, nonce=nonce) == "canonical"
    moved_to = transfer_verdict(landed_block=block + moved, booked_block=block, mined_nonce=mined, nonce=nonce)
    assert moved_to == BookedVerdict.MOVED


@given(nonce=nonces, ahead=st.integers(min_value=1, max_value=1000), behind=st.integers(min_value=0, max_value=1000))
def test_a_vanished_transaction_is_resent_while_its_nonce_is_unused_and_reorged_out_once_taken(nonce, ahead, behind):
    unused = transfer_verdict(landed_block=None, booked_block=5, mined_nonce=max(nonce - behind, 0), nonce=nonce)
    assert unused == BookedVerdict.RESEND
    taken = transfer_verdict(landed_block=None, booked_block=5, mined_nonce=nonce + ahead, nonce=nonce)
    assert taken == BookedVerdict.REORGED_OUT


def test_an_x402_settlement_follows_the_authorization_on_chain():
    kw = {"landed_block": None, "booked_block": 10, "valid_before": 100}
    assert authorization_verdict(**kw, used=True, now=200) == BookedVerdict.MOVED  # the server settled it again
    assert authorization_verdict(**kw, used=False, now=99) == BookedVerdict.AWAIT_SERVER
    assert authorization_verdict(**kw, used=False, now=100) == BookedVerdict.REORGED_OUT  # expired unused
    assert authorization_verdict(**{**kw, "landed_block": 10}, used=True, now=200) == BookedVerdict.CANONICAL


@given(checkpoint=blocks, head=blocks, floor=st.integers(min_value=-1, max_value=100))
def test_a_rewind_goes_below_both_the_checkpoint_and_the_head_and_never_below_the_floor(checkpoint, head, floor):
    to = rewind_to(checkpoint=checkpoint, safe_head=head, floor=floor)
    assert to >= floor
    assert to == floor or to == min(checkpoint, head) - FINALITY_WINDOW_BLOCKS


@given(mined=nonces, waiting=st.sets(nonces, max_size=5))
def test_a_gap_is_the_chains_next_nonce_below_every_waiting_one(mined, waiting):
    gap = gap_nonce(mined_nonce=mined, waiting_nonces=waiting)
    if waiting and mined < min(waiting):
        assert gap == mined
    else:
        assert gap is None
