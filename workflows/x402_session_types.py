"""The x402 session workflow's public contract: its input, state, messages and the activities it calls.

A session reserves its budget once (`x402_session.reserve`), asks for approval once if the tier wants it (the
ApprovalWorkflow child, as a payment does), then serves paid requests as `fetch` Updates: each runs one
activity, `x402_session.fetch`, that asks the price, signs once (stored with its payment row), sends and settles.
`close` (or the time to live) ends it; `x402_session.mark` records every status change and, at the end, releases
what is left of the reservation. The workflow sandbox may import this module: pydantic models and constants.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from paygent.domain.x402_session import RefusalReason, SessionStatus

UPDATE_OPENED = "opened"  # -> SessionState, once the budget is reserved (or refused) and approval asked if needed
UPDATE_FETCH = "fetch"  # FetchRequest -> FetchResult; the Update id is the request's payment id
UPDATE_CLOSE = "close"  # CloseRequest -> SessionState (final)
QUERY_STATE = "state"  # -> SessionState

ACT_RESERVE = "x402_session.reserve"
ACT_MARK = "x402_session.mark"
ACT_FETCH = "x402_session.fetch"

# ApplicationError type of a refused paid request (details[0]: the RefusalReason); nothing was signed
REFUSED = "X402SessionRefused"
# a signed payment whose outcome is unknown (the reservation for it is held until the authorization expires)
UNSETTLED = "X402SessionUnsettled"


class SessionInput(BaseModel):
    session_id: str
    tenant_id: str
    wallet_id: str
    wallet_address: str
    wallet_name: str
    requested_by: str  # the actor, as the audit log names it
    requested_by_id: str
    chain_id: int
    asset: str
    decimals: int
    token_address: str
    budget_atomic: int = Field(gt=0)
    max_price_atomic: int | None = None
    origins: list[str]
    expires_at: datetime
    # carried over by continue-as-new: what the session has done so far
    carried: SessionState | None = None


RequestOutcome = Literal["paid", "refused", "unsettled", "failed"]


class RequestRecord(BaseModel):
    """One paid request as the session remembers it (the payment row holds the rest)."""

    payment_id: str
    url: str
    status: RequestOutcome
    amount_atomic: int = 0
    status_code: int | None = None
    reason: str | None = None


class SessionState(BaseModel):
    session_id: str
    status: SessionStatus
    budget_atomic: int
    spent_atomic: int = 0  # settled
    held_atomic: int = 0  # signed, not (yet) known settled: kept until the authorization expires
    requests: list[RequestRecord] = Field(default_factory=list)  # the latest MAX_KEPT
    request_count: int = 0
    last_error: str | None = None
    reason: str | None = None  # why it ended (refused, cancelled) or who closed it
    expires_at: datetime

    @property
    def remaining_atomic(self) -> int:
        return max(0, self.budget_atomic - self.spent_atomic - self.held_atomic)


MAX_KEPT = 50


class FetchRequest(BaseModel):
    payment_id: str  # the caller's idempotency key made into an id: a retry is the same request
    url: str
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body_base64: str | None = None
    max_amount_atomic: int | None = None
    actor: str
    channel: str


class FetchCall(BaseModel):
    """The fetch activity's input: the request, and the session's terms at the moment it runs."""

    session_id: str
    tenant_id: str
    wallet_id: str
    requested_by_id: str
    chain_id: int
    asset: str
    token_address: str
    request: FetchRequest
    remaining_atomic: int
    max_price_atomic: int | None = None


class Paid(BaseModel):
    amount_atomic: int
    payment_id: str
    tx_hash: str | None = None


class FetchResult(BaseModel):
    status_code: int
    headers: dict[str, str]
    body: str
    body_encoding: Literal["text", "base64"] = "text"
    paid: Paid | None = None  # None: the URL asked no payment
    held_atomic: int = 0  # signed but not settled (paid is None then too)
    body_too_large: bool = False  # paid, but the answer was over MAX_BODY_BYTES and undeclared: body is empty


class FetchRefusal(BaseModel):
    """details[0] of a REFUSED ApplicationError."""

    reason: RefusalReason
    message: str
    field: str | None = None


class CloseRequest(BaseModel):
    actor: str
    channel: str
    reason: str | None = None


class SessionReserve(BaseModel):
    session_id: str
    tenant_id: str
    wallet_id: str
    requested_by_id: str
    asset: str
    budget_atomic: int
    max_price_atomic: int | None = None


class ReserveOutcome(BaseModel):
    reserved: bool
    limit: str | None = None
    message: str | None = None


class SessionMark(BaseModel):
    session_id: str
    tenant_id: str
    status: SessionStatus
    reason: str | None = None
    actor: str = "system"
    spent_atomic: int = 0
    held_atomic: int = 0


SessionInput.model_rebuild()
