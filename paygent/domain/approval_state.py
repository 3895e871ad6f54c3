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
from paygent.domain.operation_hash import Operation

# Approvals spelled their time-lock `timelocked` before issue 10 (payments always said `time_locked`). Histories
# of approvals started before then, rows written before migration 0011 and older clients still carry it: it
# reads as `time_locked`, and ApprovalWorkflow keeps writing it where a replayed history expects it.
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

# Refusal types (ApplicationError.type on the wire): stable strings the API maps to HTTP answers.
CLOSED, STALE, SELF, NOT_APPROVER = "ApprovalClosed", "StaleOperation", "SelfApproval", "NotAnApprover"
DELEGATION_ENDED, THRESHOLD_MET, NOT_INITIATOR = "DelegationEnded", "ThresholdMet", "NotInitiator"
NOTHING_TO_REVOKE, NOT_ALLOWED, INVALID, NO_CHANGE = "NothingToRevoke", "NotAllowed", "InvalidRequest", "NoChange"
UNSATISFIABLE = "Unsatisfiable"
# Another tenant's approval (the Update validator compares the caller's tenant with the state's): the API answers
# exactly as for an approval that does not exist.
NOT_FOUND = "ApprovalNotFound"
SIGNALS_OFF = "SignalDecisionsOff"  # PAYGENT_SIGNAL_DECISIONS=off: decisions come through the API or the CLI only


class Refusal(Exception):
    def __init__(self, type_: str, reason: str) -> None:
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
