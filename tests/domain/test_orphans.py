"""The orphan sweep's rule: released when nothing was signed; held while a signed transfer or authorization may
still land."""

from __future__ import annotations

import pytest

from paygent.domain.orphans import ClosedAs, Reservation, payment_verdict, reason, run_status
from paygent.domain.payment import PaymentKind, PaymentStatus


@pytest.mark.parametrize("kind", list(PaymentKind))
@pytest.mark.parametrize(
    ("closed_as", "status"),
    [
        (ClosedAs.terminated, PaymentStatus.cancelled),
        (ClosedAs.canceled, PaymentStatus.cancelled),
        (ClosedAs.failed, PaymentStatus.failed),
        (ClosedAs.timed_out, PaymentStatus.failed),
    ],
)
def test_nothing_signed_ends_and_releases(kind, closed_as, status):
    verdict = payment_verdict(kind, closed_as, signed=False)
    assert (verdict.status, verdict.reservation, verdict.leave_to_reconciler) == (status, Reservation.released, False)


@pytest.mark.parametrize("closed_as", list(ClosedAs))
def test_a_signed_transfer_is_left_to_the_reconciler_with_its_reservation(closed_as):
    verdict = payment_verdict(PaymentKind.transfer, closed_as, signed=True)
    assert (verdict.status, verdict.reservation, verdict.leave_to_reconciler) == (
        PaymentStatus.submitted,
        Reservation.held,
        True,
    )


@pytest.mark.parametrize("closed_as", list(ClosedAs))
def test_a_signed_authorization_fails_and_holds(closed_as):
    verdict = payment_verdict(PaymentKind.x402, closed_as, signed=True)
    assert (verdict.status, verdict.reservation) == (PaymentStatus.failed, Reservation.held)


def test_runs_and_reasons():
    assert run_status(ClosedAs.terminated) == "cancelled" and run_status(ClosedAs.failed) == "failed"
    assert reason(ClosedAs.terminated, "stuck") == "its workflow was terminated: stuck"
    assert reason(ClosedAs.timed_out, None) == "its workflow timed out"
