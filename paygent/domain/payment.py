"""A payment's vocabulary and the PaymentWorkflow's input, below every layer that needs them.

The API records and starts payments, activities record an agent's payments and move their status, the workflow
decides, and the reconciler settles: all of them spell a status or a kind through these enums. StrEnum members
are `str`, so rows, JSON answers and workflow payloads carry the same plain strings as before.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


class PaymentStatus(StrEnum):
    """`payments.status`, the `state` Query and the PaygentStatus search attribute; the last four are terminal."""

    pending = "pending"
    awaiting_approval = "awaiting_approval"
    time_locked = "time_locked"
    signing = "signing"
    submitted = "submitted"
    confirmed = "confirmed"
    failed = "failed"
    cancelled = "cancelled"
    refused = "refused"
    reorged_out = "reorged_out"  # was confirmed; a reorg deeper than the depth dropped it and its nonce went to another


PAYMENT_TERMINAL = frozenset(
    {
        PaymentStatus.confirmed,
        PaymentStatus.failed,
        PaymentStatus.cancelled,
        PaymentStatus.refused,
        PaymentStatus.reorged_out,
    }
)
# a payment can be cancelled only before signing starts: a signed transaction cannot be recalled
PAYMENT_CANCELLABLE = frozenset({PaymentStatus.pending, PaymentStatus.awaiting_approval, PaymentStatus.time_locked})
PAYMENT_WAITING = frozenset({PaymentStatus.awaiting_approval, PaymentStatus.time_locked})  # for people to decide
PAYMENT_PAST_APPROVAL = frozenset({PaymentStatus.signing, PaymentStatus.submitted, PaymentStatus.confirmed})


class PaymentKind(StrEnum):
    transfer = "transfer"  # an ERC-20 transfer to `to`
    x402 = "x402"  # fetch `url`, paying with an EIP-3009 authorization if the server answers 402
    swap = "swap"  # trade `amount_atomic` of `asset` for another token on a Uniswap V2 router (`to`)


PAYMENT_WORKFLOW = "PaymentWorkflow"
ZERO_ADDRESS = "0x" + "0" * 40  # an x402 payment's recipient until the server's 402 answer names it
# payments.details key set when the receipt wait gave up; the reconciler settles such payments
RECEIPT_WAIT_GAVE_UP = "receipt_wait_gave_up_at"
# audit action of a Temporal cancel that arrived once signing had begun: recorded, and the payment settles
CANCEL_REFUSED = "payment.cancel_refused"


def payment_workflow_id(payment_id: str) -> str:
    return f"payment-{payment_id}"


class PaymentRequest(BaseModel):
    """PaymentWorkflow's input: everything it needs to decide; the signing key is never part of it."""

    payment_id: str
    tenant_id: str
    wallet_id: str
    wallet_address: str
    requested_by: str  # user name
    requested_by_id: str
    chain_id: int
    asset: str
    decimals: int
    token_address: str
    to: str
    amount_atomic: int
    memo: str | None = None
    kind: PaymentKind = PaymentKind.transfer  # x402: fetch `url`, paying at most `max_amount_atomic` if asked
    url: str | None = None
    max_amount_atomic: int | None = None
    # short steps as local activities (workflows/payment.py, LOCAL_STEPS): chosen when the payment starts
    local_steps: bool = False
