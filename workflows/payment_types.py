"""The payment workflow's public contract: its state, its messages, and the names of the activities it calls.

The API and activities import these models; the workflow never imports activity code (it names activities
by string), so the workflow sandbox stays free of web3 and database drivers. The workflow's input
(`PaymentRequest`), its id and the status vocabulary live in paygent/domain/payment.py, below every layer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from paygent.domain.approval_policy import ApprovalPolicy
from paygent.domain.payment import PaymentStatus
from workflows.approval_types import ApprovalProgress

UPDATE_CANCEL = "cancel"  # PaymentCancelRequest -> PaymentState; refused with PaymentNotCancellable once signing began
QUERY_STATE = "state"  # -> PaymentState
# A payment started by another workflow (an agent run) pushes each change to it with this Signal.
SIGNAL_PROGRESS = "payment_progress"
PATCH_PROGRESS = "payment-progress-to-parent-v1"  # workflow.patched id: where PaymentWorkflow signals its parent

# Activity names (implemented in activities/payments.py and activities/chain.py).
ACT_MARK_STATUS = "payments.mark_status"
ACT_RESERVE = "payments.reserve"
ACT_SIGN = "payments.sign_transfer"
ACT_BROADCAST = "payments.broadcast"
ACT_AWAIT_RECEIPT = "payments.await_receipt"
ACT_RECEIPT_GAVE_UP = "payments.receipt_wait_gave_up"  # the followed wait timed out: leave it to the reconciler
ACT_SETTLE = "payments.settle"
# One activity per side-effect boundary (workflows/payment.py, PATCH_FOLDED_STEPS): reserve and read the approval
# policy in one transaction; sign, store, send and record `submitted` in one step, so a nonce is sent as soon as
# it is allocated.
ACT_RESERVE_WITH_POLICY = "payments.reserve_with_policy"
ACT_SIGN_AND_SEND = "payments.sign_and_send"
ACT_RECORD_EVENT = "payments.record_event"  # an audit row that changes no status (e.g. a refused Temporal cancel)


class StatusChange(BaseModel):
    payment_id: str
    status: PaymentStatus
    reason: str | None = None
    actor: str = "system"
    details: dict = Field(default_factory=dict)
    # A closed x402 payment whose signed authorization could still be settled keeps its reservation: the
    # reconciler commits it if the authorization lands, or releases it once its `validBefore` has passed.
    hold_reservation: bool = False
    channel: str = "system"  # how the change was asked for: `temporal` for a cancel sent with Temporal's tools


class PaymentEvent(BaseModel):
    """One audited step of a payment that moves no status (`payments.record_event`)."""

    payment_id: str
    action: str  # e.g. payment.cancel_refused
    actor: str
    channel: str
    data: dict = Field(default_factory=dict)


class ReserveOutcome(BaseModel):
    reserved: bool
    limit: str | None = None  # which spending rule refused, when not reserved
    message: str | None = None
    # the approval policy in force, read in the reservation's transaction (payments.reserve_with_policy only)
    policy: ApprovalPolicy | None = None


class SignedTransfer(BaseModel):
    payment_id: str
    tx_hash: str
    nonce: int
    reused: bool  # True when an earlier attempt had already signed: the same payload is used again


class ReceiptResult(BaseModel):
    tx_hash: str | None  # None for an x402 settlement whose receipt was lost (the chain shows it used)
    succeeded: bool
    block_number: int | None
    gas_used: int
    revert_reason: str | None = None
    # The wait gave up (PAYGENT_RECEIPT_WAIT_SECONDS) while the signed transaction could still land: the
    # payment stays `submitted` and the reconciler settles it, whichever way it ends.
    pending: bool = False


class Settlement(BaseModel):
    payment_id: str
    tenant_id: str
    wallet_id: str
    to: str
    asset: str
    amount_atomic: int
    receipt: ReceiptResult


class PaymentCancelRequest(BaseModel):
    """Sent as the `cancel` Update; the update id is the caller's request id, so retries deduplicate."""

    actor: str
    channel: str = "api"
    reason: str | None = None


class PaymentState(BaseModel):
    """What the `state` query returns and what the workflow ends with."""

    payment_id: str
    status: PaymentStatus
    tx_hash: str | None = None
    block_number: int | None = None
    failure_reason: str | None = None


PaymentProgressChange = Literal["status", "approval"]


class PaymentProgress(BaseModel):
    """One change of a payment, pushed to the workflow that started it (Signal `payment_progress`).

    `change` is `status` when the payment's status moved (to `status`), `approval` when its approval moved
    (`approval` then says how: opened, approved, revoked, edited). `approval` is the latest known either way.
    The final state is not signalled: the parent reads it from the child's result.
    """

    payment_id: str
    change: PaymentProgressChange
    status: PaymentStatus
    approval: ApprovalProgress | None = None
    reason: str | None = None
