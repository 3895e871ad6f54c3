"""Pure rules of finality: what a booked payment's transaction has become after a reorg, and what to do.

A payment is booked (`confirmed`, ledger entries written) once its transaction is `confirmations` deep. A reorg
deeper than that can still take the transaction out of the canonical chain. What Paygent then does depends only
on what the chain shows, read by the caller and passed in here:

- the transaction (or another of the payment's signed attempts) has a receipt: `CANONICAL` at the block it was
  booked at, or `MOVED` to another block (record the new block);
- no receipt, and the nonce is still unused: `RESEND` the stored bytes (they can still land; a `payment.reorged`
  event is recorded once);
- no receipt, and the nonce was used by another transaction: `REORGED_OUT`; the payment can never execute, so
  its ledger entries are reversed with a compensating entry and a mismatch opens for an operator.

x402 payments have no transaction of ours: the EIP-3009 authorization is the thing that lands, and only the
server holding it can settle it again. The same verdicts, read from `authorizationState` and `validBefore`:
used -> `MOVED` (the scan matches its transaction), unused and still valid -> `AWAIT_SERVER`, unused and expired
-> `REORGED_OUT`.
"""

from __future__ import annotations

from enum import StrEnum

FINALITY_WINDOW_BLOCKS = 64  # booked payments this close to the head are checked again; deeper reorgs are not


class BookedVerdict(StrEnum):
    CANONICAL = "canonical"
    MOVED = "moved"
    RESEND = "resend"
    AWAIT_SERVER = "await_server"  # x402: the authorization is unused and valid; only its server can settle it
    REORGED_OUT = "reorged_out"


def transfer_verdict(
    *, landed_block: int | None, booked_block: int | None, mined_nonce: int, nonce: int
) -> BookedVerdict:
    """A transfer signed by the wallet: `mined_nonce` is the wallet's transaction count at the head."""
    if landed_block is not None:
        return BookedVerdict.CANONICAL if landed_block == booked_block else BookedVerdict.MOVED
    return BookedVerdict.RESEND if mined_nonce <= nonce else BookedVerdict.REORGED_OUT


def authorization_verdict(
    *, landed_block: int | None, booked_block: int | None, used: bool, valid_before: int, now: int
) -> BookedVerdict:
    """An x402 payment: its settlement transaction (the server's), else the authorization's state on chain."""
    if landed_block is not None:
        return BookedVerdict.CANONICAL if landed_block == booked_block else BookedVerdict.MOVED
    if used:
        return BookedVerdict.MOVED  # settled again, in a transaction we have not matched yet
    return BookedVerdict.AWAIT_SERVER if now < valid_before else BookedVerdict.REORGED_OUT


def rewind_to(*, checkpoint: int, safe_head: int, floor: int) -> int:
    """Where a scan starts again when its checkpoint block is no longer in the chain: a window below the lower of
    the checkpoint and the safe head, never below the first block the reconciler counts (`floor`)."""
    return max(min(checkpoint, safe_head) - FINALITY_WINDOW_BLOCKS, floor)


def gap_nonce(*, mined_nonce: int, waiting_nonces: set[int]) -> int | None:
    """The nonce that holds a wallet's queue: the chain's next one, when a later one waits and nobody waits on it."""
    if waiting_nonces and mined_nonce < min(waiting_nonces):
        return mined_nonce
    return None
