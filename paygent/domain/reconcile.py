"""Pure rules of the reconciler: which blocks to scan, what a chain movement is, when an authorization is final.

No I/O and no Temporal: the activities feed these functions what they read and act on the verdicts.
"""

from __future__ import annotations

from enum import StrEnum


class Movement(StrEnum):
    PAYMENT = "payment"  # funds out, explained by one of the wallet's payments
    DEPOSIT = "deposit"  # funds in (a deposit, or a payment from another wallet)
    GAS = "gas"  # native fees of a transaction the wallet sent for a payment
    MISMATCH = "mismatch"  # funds out that no payment explains


class AuthorizationVerdict(StrEnum):
    SETTLED = "settled"  # the token consumed it: the payment was paid, whatever Paygent recorded
    EXPIRED = "expired"  # unused and past validBefore: it can never be settled; the reservation may go
    OPEN = "open"  # unused and still valid: a server holding it could settle it any moment


def scan_ranges(checkpoint: int, safe_head: int, batch_blocks: int) -> list[tuple[int, int]]:
    """Closed block ranges covering (checkpoint, safe_head], each at most `batch_blocks` wide."""
    if batch_blocks < 1:
        raise ValueError("batch_blocks must be at least 1")
    ranges: list[tuple[int, int]] = []
    start = checkpoint + 1
    while start <= safe_head:
        end = min(start + batch_blocks - 1, safe_head)
        ranges.append((start, end))
        start = end + 1
    return ranges


def safe_head(head: int, confirmations: int) -> int:
    """The newest block buried `confirmations` deep (1 = the head itself); -1 when none is yet."""
    return head - max(confirmations, 1) + 1


def classify(*, outgoing: bool, matched_payment: bool) -> Movement:
    """Funds in are deposits; funds out are a payment's execution or, when no payment explains them, a mismatch."""
    if not outgoing:
        return Movement.DEPOSIT
    return Movement.PAYMENT if matched_payment else Movement.MISMATCH


def authorization_verdict(*, used: bool, valid_before: int, now: int) -> AuthorizationVerdict:
    """EIP-3009: `transferWithAuthorization` requires block.timestamp < validBefore, so once `now` (the later
    of the chain's and the wall clock) reaches validBefore an unused authorization is dead for good."""
    if used:
        return AuthorizationVerdict.SETTLED
    return AuthorizationVerdict.EXPIRED if now >= valid_before else AuthorizationVerdict.OPEN


def unexplained_native(*, previous_balance: int, balance: int, explained: int) -> int:
    """Native balance change no known movement explains (negative: coins left the wallet unaccounted)."""
    return balance - previous_balance - explained
