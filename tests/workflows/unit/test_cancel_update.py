"""The cancel Update's pure parts that PaymentWorkflow and SwapWorkflow share (workflows/cancel_update.py): the
validator's refusal, word for word as each workflow gave it, and the reason a cancelled row keeps."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from paygent.domain.channels import Channel
from paygent.domain.errors import ErrorType
from paygent.domain.payment import PAYMENT_CANCELLABLE, PaymentStatus
from workflows import payment_types as pt
from workflows.cancel_update import cancel_reason, refuse_unless_cancellable

PAYMENT_AFTER = " (once a transaction is signed and broadcast it cannot be recalled)"


@pytest.mark.parametrize("status", sorted(PAYMENT_CANCELLABLE))
def test_a_cancel_before_signing_is_taken(status):
    refuse_unless_cancellable("payment", status, PAYMENT_AFTER)
    refuse_unless_cancellable("swap", status)


@pytest.mark.parametrize(
    "what,after,message",
    [
        (
            "payment",
            PAYMENT_AFTER,
            "payment is submitted: it can be cancelled only before signing "
            "(once a transaction is signed and broadcast it cannot be recalled)",
        ),
        ("swap", "", "swap is submitted: it can be cancelled only before signing"),
    ],
)
def test_a_cancel_after_signing_is_refused_with_the_workflows_own_words(what, after, message):
    with pytest.raises(ApplicationError) as refused:
        refuse_unless_cancellable(what, PaymentStatus.submitted, after)
    assert refused.value.message == message and refused.value.type == ErrorType.payment_not_cancellable


def test_the_reason_names_who_cancelled_through_which_channel_and_why():
    asked = pt.PaymentCancelRequest(actor="alice", channel=Channel.api, reason="wrong recipient")
    assert cancel_reason(asked) == "cancelled by alice via api: wrong recipient"
    assert cancel_reason(pt.PaymentCancelRequest(actor="bob", channel=Channel.cli)) == "cancelled by bob via cli"
