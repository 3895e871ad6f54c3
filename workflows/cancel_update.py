"""The `cancel` Update that PaymentWorkflow (workflows/payment.py) and SwapWorkflow (workflows/swap.py) both answer
(api/payment_cancel.py sends it to either): who may still cancel, what waits, and the reason the row keeps.

Pure: no commands. The validator's refusal is raised before anything is written to history; the Update itself
waits, without a timer, for the workflow to record its outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from paygent.domain.payment import PAYMENT_CANCELLABLE, PAYMENT_TERMINAL
from workflows import payment_types as pt

with workflow.unsafe.imports_passed_through():
    from paygent.domain.errors import ErrorType

S = TypeVar("S", bound="HasStatus")


class HasStatus(Protocol):
    @property
    def status(self) -> str: ...


def refuse_unless_cancellable(what: str, status: str, after: str = "") -> None:
    """The validator: a cancel is taken only before signing; `what` ("payment", "swap") and `after` (why not,
    after the standard words) make the refusal's message."""
    if status not in PAYMENT_CANCELLABLE:
        raise ApplicationError(
            f"{what} is {status}: it can be cancelled only before signing{after}",
            type=ErrorType.payment_not_cancellable,
        )


async def outcome_once_terminal(state: Callable[[], S]) -> S:
    """The Update's answer: the workflow's state once it has ended (cancelled, or settled if signing won)."""
    await workflow.wait_condition(lambda: state().status in PAYMENT_TERMINAL)
    return state()


def cancel_reason(c: pt.PaymentCancelRequest) -> str:
    """What the row keeps as its failure reason: who cancelled, through which channel, and why if they said."""
    return f"cancelled by {c.actor} via {c.channel}" + (f": {c.reason}" if c.reason else "")
