"""SwapWorkflow's public contract: its input, state, the names of its activities and their messages.

A swap is a `payments` row of kind `swap` (asset and amount = its input) governed like a payment: the same
reservation, approval gate and status vocabulary (payments.reserve_with_policy, payments.mark_status and the child
ApprovalWorkflow are shared); its chain steps are activities/swaps.py.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from paygent.domain.payment import PaymentRequest, PaymentStatus

WORKFLOW_NAME = "SwapWorkflow"
QUERY_STATE = "state"  # -> SwapState

ACT_QUOTE = "swaps.quote"
ACT_SIGN_AND_SEND = "swaps.sign_and_send"  # re-quote, then approve (exact) + swap: nonces, bytes, first send
ACT_AWAIT_RECEIPT = "swaps.await_receipt"
ACT_RESET_ALLOWANCE = "swaps.reset_allowance"  # after a refusal or revert once the approve was sent: back to 0
ACT_SETTLE = "swaps.settle"

STEP_APPROVE, STEP_SWAP, STEP_RESET = "approve", "swap", "reset"

# workflow.patched id: a swap with a parent (an agent run) signals it `payment_progress` after each status change
# and passes on each approval progress, as a payment does; its approval's time-lock becomes the status time_locked.
PATCH_PROGRESS = "swap-progress-to-parent-v1"


class SwapRequest(BaseModel):
    """SwapWorkflow's input. `payment` carries the input leg (asset, token, amount) and `to` = the router."""

    payment: PaymentRequest
    asset_out: str
    token_out: str
    decimals_out: int
    slippage_bps: int
    router: str
    factory: str
    max_price_impact_bps: int
    deadline_seconds: int
    router_name: str = "Uniswap V2"

    @property
    def tenant_id(self) -> str:
        """The tenant the workflow stamps on its activities (workflows/tenant_header.py reads it)."""
        return self.payment.tenant_id


class QuoteRequest(BaseModel):
    payment_id: str
    token_in: str
    token_out: str
    amount_in: int
    slippage_bps: int
    router: str
    factory: str
    max_price_impact_bps: int


class QuoteResult(BaseModel):
    """A quote that passed the guards, or the guard that refused it (with the figures in `message`)."""

    amount_out: int = 0
    min_amount_out: int = 0
    price_impact_bps: int = 0
    reserve_in: int = 0
    reserve_out: int = 0
    pair: str | None = None
    block_number: int = 0
    refused_by: str | None = None
    message: str | None = None


class SignRequest(BaseModel):
    swap: SwapRequest
    min_amount_out: int  # the approved minimum: the re-quote must reach it, and the router enforces it


class SignedSwap(BaseModel):
    approve_tx_hash: str | None  # None: an allowance of exactly the amount was already in place
    swap_tx_hash: str
    deadline: int  # unix seconds, as signed
    requoted_amount_out: int
    reused: bool  # an earlier attempt had signed: the stored bytes were sent again


class ReceiptRequest(BaseModel):
    payment_id: str
    tenant_id: str
    step: str


class SwapReceipt(BaseModel):
    tx_hash: str
    succeeded: bool
    block_number: int
    gas_used: int
    revert_reason: str | None = None


class ResetRequest(BaseModel):
    payment_id: str
    tenant_id: str
    wallet_id: str
    wallet_address: str
    chain_id: int
    token_in: str
    router: str


class ResetResult(BaseModel):
    tx_hash: str | None  # None: nothing to reset (the allowance was already 0)
    allowance_after: int


class Settlement(BaseModel):
    swap: SwapRequest
    receipt: SwapReceipt
    min_amount_out: int
    quoted_amount_out: int
    price_impact_bps: int


class Settled(BaseModel):
    amount_in: int
    amount_out: int
    gas_used: int


class SwapState(BaseModel):
    payment_id: str
    status: PaymentStatus
    amount_in: int
    quoted_amount_out: int | None = None
    min_amount_out: int | None = None
    price_impact_bps: int | None = None
    amount_out: int | None = None
    tx_hash: str | None = None
    approve_tx_hash: str | None = None
    reset_tx_hash: str | None = None
    gas_used: int | None = None
    failure_reason: str | None = None
    details: dict = Field(default_factory=dict)
