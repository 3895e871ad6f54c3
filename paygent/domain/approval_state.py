"""The state of one M-of-N approval, and the refusal its rules raise. Pure data (pydantic), no I/O, no clock.

The ApprovalWorkflow holds one `ApprovalState`; `paygent.domain.approval_rules` changes it; the `state` Query and
the `approvals` table show it (through `workflows.approval_types.ApprovalView`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from paygent.domain.approval_policy import ApprovalPolicy, Tier
from paygent.domain.channels import Channel
from paygent.domain.errors import ErrorType
from paygent.domain.operation_hash import Operation

# Approvals once spelled their time-lock `timelocked` (payments always said `time_locked`). Histories of approvals
# started before the rename, rows written before migration 0011 and older clients still carry it: it reads as
# `time_locked`, and ApprovalWorkflow keeps writing it where a replayed history expects it.
LEGACY_TIME_LOCKED = "timelocked"


class ApprovalStatus(StrEnum):
    pending = "pending"
    time_locked = "time_locked"  # approved by enough people; executes when the time-lock ends
    approved = "approved"
    rejected = "rejected"
    expired = "expired"
    cancelled = "cancelled"

    @classmethod
    def _missing_(cls, value: object) -> ApprovalStatus | None:
        return cls.time_locked if value == LEGACY_TIME_LOCKED else None


APPROVAL_FINAL = frozenset(
    {ApprovalStatus.approved, ApprovalStatus.rejected, ApprovalStatus.expired, ApprovalStatus.cancelled}
)

# Refusal types: ErrorType members (their strings are what ApplicationError.type carries on the wire), under the
# short names the rules and the API use.
CLOSED, STALE, SELF = ErrorType.approval_closed, ErrorType.stale_operation, ErrorType.self_approval
NOT_APPROVER, DELEGATION_ENDED = ErrorType.not_an_approver, ErrorType.delegation_ended
THRESHOLD_MET, NOT_INITIATOR = ErrorType.threshold_met, ErrorType.not_initiator
NOTHING_TO_REVOKE, NOT_ALLOWED = ErrorType.nothing_to_revoke, ErrorType.not_allowed
INVALID, NO_CHANGE, UNSATISFIABLE = ErrorType.invalid_request, ErrorType.no_change, ErrorType.unsatisfiable
NOT_FOUND, SIGNALS_OFF = ErrorType.approval_not_found, ErrorType.signal_decisions_off


class Refusal(Exception):
    def __init__(self, type_: ErrorType, reason: str) -> None:
        super().__init__(reason)
        self.type = type_
        self.reason = reason


class ApprovalRecord(BaseModel):
    approver: str  # who acted
    on_behalf_of: str | None = None  # the tier approver it counts for, when the actor is their delegate
    at: datetime
    channel: Channel

    @property
    def counts_for(self) -> str:
        return self.on_behalf_of or self.approver


class Delegation(BaseModel):
    delegator: str
    delegate: str
    until: datetime


class ApprovalState(BaseModel):
    approval_id: str
    tenant_id: str
    initiator: str
    policy: ApprovalPolicy
    operation: Operation
    operation_hash: str
    previous_hashes: list[str] = Field(default_factory=list)
    tier_index: int
    status: ApprovalStatus = ApprovalStatus.pending
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    delegations: list[Delegation] = Field(default_factory=list)
    opened_at: datetime
    expires_at: datetime
    threshold_met_at: datetime | None = None
    threshold_met_by: str | None = None
    timelock_until: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    reason: str | None = None
    revision: int = 0  # bumped by every accepted change; orders the rows the activities write
    edits: int = 0

    @property
    def tier(self) -> Tier:
        return self.policy.tiers[self.tier_index]

    @property
    def approvals_needed(self) -> int:
        return self.tier.approvals_required

    @property
    def approved_by(self) -> list[str]:
        return [a.counts_for for a in self.approvals]

    def awaiting(self, now: datetime) -> list[str]:
        """Who may still approve now: uncounted tier approvers (never the initiator) and their active delegates."""
        if self.status != ApprovalStatus.pending:
            return []
        acted = {a.approver for a in self.approvals}
        members = [m for m in self.tier.approvers if m != self.initiator and m not in self.approved_by]
        delegates = [
            d.delegate for d in self.delegations if d.delegator in members and d.until > now and d.delegate not in acted
        ]
        return sorted(set(members) | set(delegates))
