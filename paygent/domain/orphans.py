"""What becomes of a row whose workflow closed while the row was not final (a terminate, a cancel on old code, a
workflow that failed or timed out): pure rules, no I/O. The sweep (activities/orphans.py) applies them.

The rule is the one the workflows follow on a cancellation: before anything is signed the payment ends and its
reservation is released; once a transaction or an authorization is signed it may still land, so the reservation
stays held and the reconciler settles the payment from what the chain shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from paygent.domain.agent_run import RunStatus
from paygent.domain.approval_state import ApprovalStatus
from paygent.domain.payment import PaymentKind, PaymentStatus


class ClosedAs(StrEnum):
    """How the workflow closed, as Temporal's visibility spells `ExecutionStatus`."""

    terminated = "Terminated"
    canceled = "Canceled"
    failed = "Failed"
    timed_out = "TimedOut"


# A query for these finds the orphans' workflows; `Completed` leaves rows open only on purpose (a payment left
# `submitted` for the reconciler).
ORPHANING = tuple(ClosedAs)


class Reservation(StrEnum):
    released = "released"
    held = "held"


@dataclass(frozen=True)
class PaymentVerdict:
    status: PaymentStatus  # the row's new status (`submitted` when left to the reconciler)
    reservation: Reservation
    leave_to_reconciler: bool  # a signed transfer: marked as a receipt wait that gave up
    explanation: str


def operator_ended(closed_as: ClosedAs) -> bool:
    """Terminated or cancelled: someone with Temporal's tools ended it (the audit channel is `temporal`)."""
    return closed_as in (ClosedAs.terminated, ClosedAs.canceled)


def payment_verdict(kind: PaymentKind, closed_as: ClosedAs, *, signed: bool) -> PaymentVerdict:
    ended = PaymentStatus.cancelled if operator_ended(closed_as) else PaymentStatus.failed
    if not signed:
        return PaymentVerdict(ended, Reservation.released, False, "nothing was signed: the reservation is released")
    if kind == PaymentKind.transfer:
        return PaymentVerdict(
            PaymentStatus.submitted,
            Reservation.held,
            True,
            "a signed transaction may still land: the payment stays submitted with its reservation and the "
            "reconciler re-sends the same bytes and settles it",
        )
    return PaymentVerdict(
        PaymentStatus.failed,
        Reservation.held,
        False,
        "a signed authorization may still be settled: the reservation is held until it expires, and a late "
        "settlement is reconciled",
    )


def approval_status(closed_as: ClosedAs) -> ApprovalStatus:
    """An approval has no `failed`: whatever closed its workflow, nobody can decide it any more."""
    del closed_as
    return ApprovalStatus.cancelled


def run_status(closed_as: ClosedAs) -> RunStatus:
    return RunStatus.cancelled if operator_ended(closed_as) else RunStatus.failed


def reason(closed_as: ClosedAs, detail: str | None) -> str:
    text = {
        ClosedAs.terminated: "its workflow was terminated",
        ClosedAs.canceled: "its workflow was cancelled",
        ClosedAs.failed: "its workflow failed",
        ClosedAs.timed_out: "its workflow timed out",
    }[closed_as]
    return f"{text}: {detail}" if detail else text
