"""Pure rules of the reconciler: which blocks to scan, what a chain movement is, when an authorization is final.

No I/O and no Temporal: the activities feed these functions what they read and act on the verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Movement(StrEnum):
    PAYMENT = "payment"  # funds out, explained by one of the wallet's payments
    DEPOSIT = "deposit"  # funds in (a deposit, or a payment from another wallet)
    GAS = "gas"  # native fees of a transaction the wallet sent for a payment
    MISMATCH = "mismatch"  # funds out that no payment explains
    SELF_CREDIT = "self_credit"  # a payment to the wallet's own address: its funds coming back in


LEDGER_KINDS = frozenset({Movement.DEPOSIT, Movement.GAS, Movement.SELF_CREDIT})  # counted beside payment entries


class MismatchCause(StrEnum):
    """Why the ledger and the chain differ. New causes (reorgs, swaps, sessions) are added here and named by
    `compare_balances`' callers; whatever no cause accounts for is `UNEXPLAINED`."""

    TRANSFER_OUT_WITHOUT_PAYMENT = "transfer_out_without_payment"  # a Transfer log out that no payment made
    UNEXPLAINED_DECREASE = "unexplained_decrease"  # native coin left the wallet with no known transaction
    BOOKED_NOT_ON_CHAIN = "booked_not_on_chain"  # the ledger booked a payment the chain does not show
    REORGED_OUT = "reorged_out"  # a confirmed payment a deep reorg undid: reversed; an operator resolves it
    UNEXPLAINED = "unexplained"  # a difference none of the above accounts for


@dataclass(frozen=True)
class Cause:
    """One reason for (part of) a difference: `amount_atomic` is its share of chain minus ledger."""

    cause: MismatchCause
    key: str  # which one (stable across ticks): `movement:<id>`, `payment:<id>`, `unexplained:<amount>`
    amount_atomic: int
    movement_id: int | None = None
    payment_id: str | None = None
    tx_hash: str | None = None
    counterparty: str | None = None


@dataclass(frozen=True)
class BalanceComparison:
    """Ledger against chain for one wallet and asset at one block, and what the difference is made of."""

    asset: str
    block_number: int
    ledger: int  # the balance the ledger implies: payment entries plus deposit, gas and self-credit movements
    chain: int  # the chain's balance at `block_number`
    in_flight: int  # differences that are only timing: a payment seen on chain not yet booked, or the reverse
    causes: tuple[Cause, ...]  # every mismatch: the named causes, and the rest as UNEXPLAINED

    @property
    def difference(self) -> int:
        return self.chain - self.ledger

    @property
    def clean(self) -> bool:
        return not self.causes


def compare_balances(
    *, asset: str, block_number: int, ledger: int, chain: int, in_flight: int = 0, named: Iterable[Cause] = ()
) -> BalanceComparison:
    """Ledger == chain, up to what is in flight, or else a mismatch for every named cause and one for the rest.

    The one place a difference is judged: a cause known elsewhere (an unmatched transfer, a reorg, a swap) is
    passed in `named` with its share; what the named causes and `in_flight` leave over is UNEXPLAINED, whatever
    produced it, so no difference is ever silently accepted."""
    named = tuple(c for c in named if c.amount_atomic)
    rest = chain - ledger - in_flight - sum(c.amount_atomic for c in named)
    if rest:
        named += (Cause(MismatchCause.UNEXPLAINED, f"{MismatchCause.UNEXPLAINED}:{rest}", rest),)
    return BalanceComparison(
        asset=asset, block_number=block_number, ledger=ledger, chain=chain, in_flight=in_flight, causes=named
    )


# Audit actions and webhook event types of the balance comparison (workflows/reconcile_types.py re-exports them)
MISMATCH_OPENED = "reconciliation.mismatch"
MISMATCH_RESOLVED = "reconciliation.mismatch_resolved"


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


def legs(*, sender: str, receiver: str, wallet: str, matched_payment: bool) -> list[tuple[Movement, int]]:
    """The movements one Transfer log makes for `wallet`, as (kind, sign). Funds in are matched to a payment only
    for a swap's output leg (the transaction is the wallet's own swap); any other funds in are a deposit. A transfer to itself is both legs: a
    payment to its own address is the payment out and its funds back in (`SELF_CREDIT`), so the ledger, which
    booked the payment, reads what the chain does; one no payment made moved nothing and records nothing."""
    out, into = sender.lower() == wallet.lower(), receiver.lower() == wallet.lower()
    if out and into:
        return [(Movement.PAYMENT, -1), (Movement.SELF_CREDIT, 1)] if matched_payment else []
    if out:
        return [(classify(outgoing=True, matched_payment=matched_payment), -1)]
    if matched_payment:  # funds in by the wallet's own swap: its output leg, which the swap's ledger entries book
        return [(Movement.PAYMENT, 1)]
    return [(Movement.DEPOSIT, 1)]


def authorization_verdict(*, used: bool, valid_before: int, now: int) -> AuthorizationVerdict:
    """EIP-3009: `transferWithAuthorization` requires block.timestamp < validBefore, so once `now` (the later
    of the chain's and the wall clock) reaches validBefore an unused authorization is dead for good."""
    if used:
        return AuthorizationVerdict.SETTLED
    return AuthorizationVerdict.EXPIRED if now >= valid_before else AuthorizationVerdict.OPEN


def unexplained_native(*, previous_balance: int, balance: int, explained: int) -> int:
    """Native balance change no known movement explains (negative: coins left the wallet unaccounted)."""
    return balance - previous_balance - explained
