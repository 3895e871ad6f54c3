"""The x402 pay-per-request activities' public contract: names, inputs and outputs.

A workflow paying for a URL calls, in order (each activity is idempotent and safe to retry):
1. `x402.probe`  (X402ProbeRequest -> X402ProbeResult): GET the URL unpaid. A 402's requirements are
   checked against the policy and recorded; a refusal raises `X402Refused` (nothing signed). A
   resource that asks for no payment comes back with `payment_required=False` and its answer recorded.
2. `x402.sign`   (X402SignRequest -> X402SignResult): under a row lock, sign the EIP-3009 authorization
   with the wallet key and persist it in the same transaction. Called again, it returns the same
   signed payment (`reused=True`); it never signs a second one for the payment.
3. `x402.send`   (X402SendRequest -> X402SendResult): send exactly the stored payment. A lost answer
   (timeout, connection reset, 5xx without a receipt) raises the retryable `X402Ambiguous`: let
   Temporal retry `x402.send` (never `x402.sign`). A server verdict against the payment (402) raises
   `X402Refused`; a non-402 4xx raises `X402Rejected`; both non-retryable.
Reserve the spending policy for `X402ProbeResult.amount_atomic` (and run approvals) between probe
and sign. The workflow sandbox may import this module: it holds pydantic models and constants only.
"""

from __future__ import annotations

from pydantic import BaseModel

from paygent.x402.policy import X402Policy  # the policy model lives with its pure rules

KIND_X402 = "x402"

ACT_X402_PROBE = "x402.probe"
ACT_X402_SIGN = "x402.sign"
ACT_X402_SEND = "x402.send"

# ApplicationError types raised by the activities: paygent.domain.errors.ErrorType.x402_* (refused and rejected are
# non-retryable verdicts; ambiguous is retryable: re-run x402.send, which re-sends the same signed payment; state is
# a wrong kind, an unprobed or unsigned payment, or a tenant mismatch)

# X402SendResult.outcome
PAID = "paid"  # 2xx with a successful settlement receipt
PAID_SERVER_ERROR = "paid_server_error"  # settled (receipt or chain), but the server answered >= 400
PAID_RESPONSE_LOST = "paid_response_lost"  # the chain shows the authorization used; no receipt came back
SERVED_UNSETTLED = "served_unsettled"  # 2xx, not settled: the authorization may still be used later
SETTLED_OUTCOMES = frozenset({PAID, PAID_SERVER_ERROR, PAID_RESPONSE_LOST})
NO_PAYMENT_REQUIRED = "no_payment_required"  # recorded by x402.probe when the URL did not answer 402


class X402ProbeRequest(BaseModel):
    payment_id: str
    tenant_id: str
    url: str
    policy: X402Policy
    timeout_seconds: float = 10.0


class X402ProbeResult(BaseModel):
    payment_id: str
    payment_required: bool
    status_code: int | None = None  # the unpaid answer's status when no payment was required
    amount_atomic: int | None = None  # the chosen requirement's price
    asset: str | None = None
    pay_to: str | None = None
    network: str | None = None


class X402SignRequest(BaseModel):
    payment_id: str
    tenant_id: str
    wallet_id: str
    policy: X402Policy


class X402SignResult(BaseModel):
    payment_id: str
    payment_identifier: str
    payer: str
    authorization_nonce: str
    amount_atomic: int
    pay_to: str
    asset: str
    valid_before: int
    reused: bool  # True when an earlier attempt had signed: the same authorization is kept


class X402SendRequest(BaseModel):
    payment_id: str
    tenant_id: str
    timeout_seconds: float = 10.0


class X402SendResult(BaseModel):
    payment_id: str
    outcome: str
    settled: bool
    status_code: int
    transaction: str | None = None  # settlement tx hash from the receipt
    amount_atomic: int
    pay_to: str
    payer: str
    replayed: bool = False  # the server answered from its payment-identifier record
    attempts: int
    body_excerpt: str = ""
