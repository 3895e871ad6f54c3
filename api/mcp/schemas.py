"""What each MCP tool answers, as models: the SDK publishes them as the tools' `outputSchema` and checks every
structured answer against them. Amounts are decimal strings in token units (`amount`), with the atomic figure
beside them (`amount_atomic`) and, where a model reads a sentence, the amount with its symbol (`amount_text`).
Fixed vocabularies are enums (payment status and kind), so a client can rely on the values. Every object is
closed (`additionalProperties: false`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from paygent.domain.payment import PaymentKind, PaymentStatus
from paygent.domain.x402_session import SessionStatus


class Out(BaseModel):
    """A tool's answer: every field declared (a field the code returns but the schema lacks fails loudly)."""

    model_config = ConfigDict(extra="forbid")


class X402Detail(Out):
    url: str | None = None
    outcome: str | None = None
    refusal: str | None = None
    authorization_valid_before: int | str | None = None
    response_status: int | None = None
    response_body_excerpt: str | None = None
    receipt: dict[str, Any] | None = Field(None, description="the facilitator's settlement receipt")
    mcp_tool: str | None = None


class ApprovalNeeded(Out):
    approval_id: str
    status: str
    approvers: list[str]
    awaiting: list[str]
    approvals_needed: int
    approvals_had: int
    approved_by: list[str]
    expires_at: str
    timelock_until: str | None = None
    how: str = Field(description="who must approve, and how")


class Payment(Out):
    id: str
    status: PaymentStatus
    kind: PaymentKind
    amount: str = Field(description='token units, e.g. "1.5"')
    amount_atomic: str
    amount_text: str = Field(description='with its symbol, e.g. "1.5 USDC"')
    asset: str
    to: str
    wallet_id: str
    memo: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    failure_reason: str | None = None
    workflow_id: str
    temporal_ui_url: str
    created_at: str
    updated_at: str
    x402: X402Detail | None = None
    approval: ApprovalNeeded | None = Field(None, description="while it awaits approval: who must approve")


class PaymentWaited(Payment):
    final: bool = Field(
        description="true once the status is final (confirmed, failed, cancelled, refused, reorged_out)"
    )


class PaymentPage(Out):
    items: list[Payment]
    next_cursor: str | None = Field(None, description="pass back as `cursor` for the next page")


class PaidAnswer(Out):
    payment_id: str
    status: PaymentStatus
    amount: str
    asset: str
    pay_to: str
    response_status: int | None = None
    body: str | None = Field(None, description="the start of the paid answer's body")
    receipt: dict[str, Any] | None = None
    approval: ApprovalNeeded | None = None


class TokenBalance(Out):
    symbol: str
    amount: str
    amount_atomic: str
    address: str | None = Field(None, description="the token contract")


class WalletBalance(Out):
    wallet_id: str
    name: str
    address: str
    may_spend: bool
    native: TokenBalance
    tokens: list[TokenBalance]


class Balances(Out):
    wallets: list[WalletBalance]


class LimitStatus(Out):
    limit: str = Field(description="velocity:<name>")
    window_seconds: int
    max: str
    used: str = Field(description="confirmed in the window")
    reserved: str = Field(description="in flight in the window")
    remaining: str


class PolicyStatus(Out):
    per_payment_cap: str | None = None
    allowed_assets: list[str] | None = None
    allowlist: list[str] | None = None
    denylist: list[str]
    limits: list[LimitStatus]


class WalletPolicyStatus(PolicyStatus):
    wallet_id: str


class AgentPolicyStatus(PolicyStatus):
    agent: str
    disabled: bool


class SpendingStatus(Out):
    asset: str
    wallets: list[WalletPolicyStatus]
    agent: AgentPolicyStatus | None = Field(None, description="an agent's own budget, across its wallets")


class PaidService(Out):
    id: str
    name: str
    url: str
    transport: Literal["http", "mcp"]
    tool: str | None = None
    description: str | None = None
    asset: str
    price: str
    price_text: str = Field(description='e.g. "0.01 USDC"')
    price_atomic: str
    network: str | None = Field(None, description="CAIP-2, e.g. eip155:31337 (unset on services seeded by hand)")
    pay_to: str | None = None
    shared: bool


class PaidServices(Out):
    services: list[PaidService]


class RefusedOffer(Out):
    name: str
    reason: str


class Discovered(Out):
    url: str
    transport: Literal["http", "mcp"]
    registered: list[PaidService]
    refused: list[RefusedOffer]


class Remembered(Out):
    key: str
    namespace: str
    stored: bool
    expires_at: str | None = None


class MemoryItem(Out):
    key: str
    value: str
    expires_at: str | None = None


class Recalled(Out):
    """One key's value (`key`, `value`, `cached`), or the keys under a prefix (`prefix`, `count`, `items`)."""

    namespace: str
    key: str | None = None
    value: str | None = None
    cached: bool | None = None
    prefix: str | None = None
    count: int | None = None
    items: list[MemoryItem] | None = None


class Cancelled(Out):
    id: str
    status: PaymentStatus
    failure_reason: str | None = None


class LimitRefused(Out):
    limit: str = Field(description="the rule: per_payment_cap, velocity:<name>, allowlist, denylist, asset, agent:...")
    message: str
    limit_atomic: str | None = None
    used_atomic: str | None = None


class TierPreview(Out):
    index: int
    max_amount: str | None = Field(None, description="the tier's upper bound in token units (none: unbounded)")
    approvals_required: int
    approvers: list[str]
    approval_timeout_seconds: int
    timelock_seconds: int
    describe: str


class Preview(Out):
    allowed: bool = Field(description="limits and budget allow it now (approval may still be needed)")
    amount: str
    amount_atomic: str
    amount_text: str
    wallet_id: str
    to: str
    refusal: LimitRefused | None = Field(None, description="the first limit that would refuse it")
    needs_approval: bool
    tier: TierPreview
    summary: str = Field(description="one sentence: what would happen")


class Memorized(Out):
    id: str
    scope: str
    model: str = Field(description="the embedding model")


class RecalledText(Out):
    id: str
    key: str | None = Field(None, description="the memory_put key the text came from, if any")
    text: str
    metadata: dict[str, Any]
    score: float


class TextRecall(Out):
    scope: str
    model: str
    index: Literal["hnsw", "exact_scan"]
    results: list[RecalledText]


class MemoryWritten(Out):
    scope: str
    key: str
    version: int
    expires_at: str | None = None


class MemoryValue(Out):
    """`value` and `version` are null when nothing is stored under the key (or it expired)."""

    scope: str
    key: str
    value: Any = Field(None, description="any JSON value")
    version: int | None = None
    partition: str | None = None
    expires_at: str | None = None
    updated_at: str | None = None
    cached: bool | None = None


class MemoryEntry(Out):
    key: str
    value: Any = Field(None, description="any JSON value")
    version: int
    partition: str
    expires_at: str | None = None
    updated_at: str | None = None


class MemoryPage(Out):
    scope: str
    items: list[MemoryEntry]
    next_cursor: str | None = None


class SessionRequest(Out):
    payment_id: str
    url: str | None = None
    status: PaymentStatus
    amount: str
    tx_hash: str | None = None
    payment_identifier: str | None = None
    at: str


class X402Session(Out):
    id: str
    status: SessionStatus
    wallet_id: str
    asset: str
    budget: str
    max_price: str | None = None
    spent: str
    held: str
    remaining: str
    origins: list[str]
    expires_at: str
    created_at: str
    last_error: str | None = None
    reason: str | None = None
    workflow_id: str
    temporal_ui_url: str
    requests: list[SessionRequest]


class SessionPaid(Out):
    amount: str
    payment_id: str
    tx_hash: str | None = None


class SessionFetchError(Out):
    code: str
    field: str | None = None
    message: str


class SessionFetched(Out):
    status_code: int
    headers: dict[str, str] = Field(description="the paid answer's headers")
    body: str | None = None
    body_encoding: Literal["base64"] | None = None
    paid: SessionPaid | None = None
    error: SessionFetchError | None = None


class SwapQuote(Out):
    """A swap's quote from the router (nothing reserved): the output now, the minimum the swap accepts at this
    slippage, the price impact against the pool's reserves, and the route."""

    from_asset: str
    to_asset: str
    amount: str
    amount_atomic: str
    amount_out: str
    amount_out_atomic: str
    amount_out_text: str
    min_amount_out: str
    min_amount_out_atomic: str
    slippage_bps: int
    price_impact_bps: int
    price_impact: str = Field(description='e.g. "0.31%"')
    route: list[str]
    router: str
    pair: str
    block_number: int
    text: str = Field(description="one line, e.g. 'Swap 10 USDC -> >= 9.15 EURC via Uniswap V2 (0.31% impact)'")


class Swap(Out):
    """A swap: its status, the input, the minimum and (once settled) the real output read from the receipt."""

    id: str
    kind: PaymentKind
    status: PaymentStatus
    wallet_id: str
    from_asset: str
    to_asset: str | None = None
    amount_in: str
    amount_in_atomic: str
    quoted_amount_out: str | None = None
    min_amount_out: str | None = None
    min_amount_out_atomic: str | None = None
    amount_out: str | None = None
    amount_out_atomic: str | None = None
    price_impact_bps: int | None = None
    slippage_bps: int | None = None
    gas_used: int | None = None
    router: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    failure_reason: str | None = None
    workflow_id: str
    temporal_ui_url: str
    created_at: str
    updated_at: str
    quote: SwapQuote | None = Field(None, description="the quote the swap started from (swap only)")
