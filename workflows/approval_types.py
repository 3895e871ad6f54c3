"""Public types of the ApprovalWorkflow: its input and outcome, the decision payloads (the same models for
Updates and Signals), the state view the `state` Query returns, and the activities' inputs.

The API, the CLI and PaymentWorkflow import these, never the workflow's internals. Names on the wire (update,
signal, query and activity names) are constants here so that a rename breaks the build, not production.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, cast

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from paygent.domain.approval_policy import ApprovalPolicy, Tier
from paygent.domain.approval_rules import ApprovalRecord, ApprovalState, ApprovalStatus, Channel, Delegation, fmt_time
from paygent.domain.operation_hash import Operation
from paygent.domain.text import SafeText

WORKFLOW_NAME = "ApprovalWorkflow"
QUERY_STATE = "state"


class Decision(StrEnum):
    """Each decision is an Update (answered, validated first) and a Signal (for Temporal's own CLI) of this name."""

    approve = "approve"
    reject = "reject"
    revoke = "revoke"
    cancel = "cancel"
    edit = "edit"
    delegate = "delegate"


ACT_RECORD = "approval.record_decision"
ACT_PUBLISH = "approval.publish_event"
ACT_WEBHOOK = "approval.deliver_webhook"
ACT_LOAD_POLICY = "approval.load_policy"
ACT_SIGNAL_GATE = "approval.signal_decisions_allowed"  # the worker's PAYGENT_SIGNAL_DECISIONS, asked per Signal
# An approval's webhook events: what ApprovalEvent.type carries and what a webhook subscription may name.
ApprovalEventType = Literal["approval.requested", "approval.decided"]
# Sent to the parent workflow (a payment) after each change; `approval_timelocked` (a bare ISO string) is what
# approvals started before this patch still send, so PaymentWorkflow handles both.
SIGNAL_PROGRESS = "approval_progress"
SIGNAL_TIMELOCKED = "approval_timelocked"
# workflow.patched id: approvals upsert PaygentApprovalState `time_locked` (before: `timelocked`, see
# paygent.domain.approval_state.LEGACY_TIME_LOCKED); histories recorded before replay the old spelling
PATCH_TIME_LOCKED_SPELLING = "approval-status-time-locked-v1"
PATCH_PROGRESS = "approval-progress-to-parent-v1"  # workflow.patched id: where ApprovalWorkflow signals progress
ApprovalProgressChange = Literal["opened", "approved", "revoked", "edited", "decided"]


def approval_workflow_id(approval_id: str) -> str:
    """Deterministic, so the API finds an approval from its id (for payments: the payment id) without a lookup."""
    return f"approval-{approval_id}"


class ApprovalInput(BaseModel):
    approval_id: str = Field(min_length=1)
    tenant_id: str = Field(min_length=1)
    operation: Operation
    initiator: str = Field(min_length=1)
    policy: ApprovalPolicy
    delegations: list[Delegation] = Field(default_factory=list)  # standing delegations known at start

    @field_validator("tenant_id")
    @classmethod
    def _tenant_uuid(cls, value: str) -> str:
        return str(uuid.UUID(value))  # the audit log and approvals table key tenants by UUID


FinalStatus = Literal["approved", "rejected", "expired", "cancelled"]  # ApprovalStatus's members in APPROVAL_FINAL


class ApprovalOutcome(BaseModel):
    approval_id: str
    status: FinalStatus
    operation: Operation  # the final operation, after any edits: execute exactly this
    operation_hash: str
    approvals: list[ApprovalRecord]
    decided_by: str
    reason: str
    decided_at: datetime
    timelock_until: datetime | None = None
    edits: int = 0


def outcome_of(state: ApprovalState) -> ApprovalOutcome:
    """The outcome of a closed approval (its status is final, so decided_at/by and reason are set)."""
    return ApprovalOutcome(
        approval_id=state.approval_id,
        status=cast(FinalStatus, str(state.status)),
        operation=state.operation,
        operation_hash=state.operation_hash,
        approvals=list(state.approvals),
        decided_by=state.decided_by or "system",
        reason=state.reason or "",
        decided_at=state.decided_at or state.opened_at,
        timelock_until=state.timelock_until,
        edits=state.edits,
    )


class _Decision(BaseModel):
    # Unknown fields are refused: a typo such as "aprover" must not become an anonymous decision.
    model_config = ConfigDict(extra="forbid")

    # The API sets this from the caller's API key; CLI-signal users name themselves (they hold cluster access).
    actor: SafeText = Field(
        min_length=1,
        max_length=200,
        validation_alias=AliasChoices("actor", "approver", "user", "by", "initiator", "delegator"),
    )
    channel: Literal[Channel.api, Channel.cli, Channel.temporal] = Channel.temporal
    reason: SafeText | None = Field(default=None, max_length=1000)
    # Set by the API only (api.approval_http.attest): without a valid one the audit records channel `temporal`.
    attestation: SafeText | None = Field(default=None, max_length=200)
    # Updates use the Update id; a Signal may carry one so a retried `temporal workflow signal` counts once.
    request_id: SafeText | None = Field(default=None, max_length=200)
    # Set by the API from the caller's key: the Update validator refuses another tenant's caller (as "not found")
    # from the workflow's own state, so a decision needs no database read to check it.
    tenant_id: SafeText | None = Field(default=None, max_length=64)


DecisionRequest = _Decision  # what every decision request has (actor, channel, tenant_id...)


class ApproveRequest(_Decision):
    operation_hash: SafeText = Field(min_length=1)
    on_behalf_of: SafeText | None = None  # only needed when a delegate holds several delegations


class RejectRequest(_Decision):
    operation_hash: SafeText | None = None


class RevokeRequest(_Decision):
    operation_hash: SafeText | None = None


class CancelRequest(_Decision):
    operation_hash: SafeText | None = None


class EditRequest(_Decision):
    operation_hash: SafeText = Field(min_length=1)  # the version being edited: a concurrent edit makes this stale
    amount_atomic: int | None = Field(default=None, gt=0)
    to: SafeText | None = None
    memo: SafeText | None = None
    clear_memo: bool = False

    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: v
            for k, v in (("amount_atomic", self.amount_atomic), ("to", self.to), ("memo", self.memo))
            if v is not None
        }
        if self.clear_memo:
            out["memo"] = None
        return out


class DelegateRequest(_Decision):
    delegate: SafeText = Field(min_length=1, max_length=200)
    until: AwareDatetime


REQUEST_MODELS: dict[Decision, type[_Decision]] = {
    Decision.approve: ApproveRequest,
    Decision.reject: RejectRequest,
    Decision.revoke: RevokeRequest,
    Decision.cancel: CancelRequest,
    Decision.edit: EditRequest,
    Decision.delegate: DelegateRequest,
}


class DecisionResult(BaseModel):
    """What an accepted Update returns; a refused one raises ApplicationError(type=...) instead."""

    decision: str
    counted: bool  # an approval that added a distinct approver
    duplicate: bool  # accepted, but it changed nothing (already counted)
    status: ApprovalStatus
    approvals_had: int
    approvals_needed: int
    operation_hash: str


class ApprovalView(BaseModel):
    """The full state, as the `state` Query returns it and as the `approvals` table stores it."""

    approval_id: str
    tenant_id: str
    workflow_id: str
    initiator: str
    status: ApprovalStatus
    operation: Operation
    operation_hash: str
    previous_hashes: list[str]
    tier: Tier
    approvals_had: int
    approvals_needed: int
    approvals: list[ApprovalRecord]
    approved_by: list[str]
    awaiting: list[str]  # who may still approve right now
    delegations: list[Delegation]
    opened_at: datetime
    expires_at: datetime
    timelock_until: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None
    revision: int
    edits: int


def view_of(state: ApprovalState, now: datetime, workflow_id: str) -> ApprovalView:
    return ApprovalView(
        approval_id=state.approval_id,
        tenant_id=state.tenant_id,
        workflow_id=workflow_id,
        initiator=state.initiator,
        status=state.status,
        operation=state.operation,
        operation_hash=state.operation_hash,
        previous_hashes=list(state.previous_hashes),
        tier=state.tier,
        approvals_had=len(state.approvals),
        approvals_needed=state.approvals_needed,
        approvals=list(state.approvals),
        approved_by=state.approved_by,
        awaiting=state.awaiting(now),
        delegations=[d for d in state.delegations if d.until > now],
        opened_at=state.opened_at,
        expires_at=state.expires_at,
        timelock_until=state.timelock_until,
        decided_at=state.decided_at,
        decided_by=state.decided_by,
        reason=state.reason,
        revision=state.revision,
        edits=state.edits,
    )


def needed_from(approvals_needed: int, approvers: list[str]) -> str:
    """ "1 approval needed from bob, carol or dave": one wording for an approval's summary and its details, so
    the counts never read as two different things ("1 of 3" beside "0 of 1 approvals")."""
    noun = "approval" if approvals_needed == 1 else "approvals"
    names = ", ".join(approvers[:-1]) + f" or {approvers[-1]}" if len(approvers) > 1 else "".join(approvers)
    return f"{approvals_needed} {noun} needed from {names or 'nobody'}"


def summary_line(label: str, approvals_needed: int, approvers: list[str]) -> str:
    """The approval's one-line summary in the Web UI's workflow list (set by the payment that starts it)."""
    return f"Approve: pay {label} ({needed_from(approvals_needed, approvers)})"


def static_details(inp: ApprovalInput, approvals_needed: int, approvers: list[str], timelock_seconds: int) -> str:
    """The approval's Details panel, fixed at start like the payment's: who asked for what, and who decides."""
    op = inp.operation
    lines = [
        f"Requested by {inp.initiator}. Memo: {op.memo or '-'}. Payment {op.payment_id}.",
        f"{needed_from(approvals_needed, approvers)} (never the requester).",
        f"Time-lock after the last approval: {timelock_seconds} s." if timelock_seconds else "No time-lock.",
        f"Wallet {op.wallet_id}, chain {op.chain_id}, token {op.token_address}.",
    ]
    return "\n".join(lines)


def details_markdown(view: ApprovalView) -> str:
    """What the Web UI shows as the workflow's current details: who approved, what is missing, until when."""
    lines = [
        f"**{view.status}**: {view.approvals_had} of {view.approvals_needed} needed approvals "
        f"({needed_from(view.approvals_needed, list(view.tier.approvers))})"
    ]
    if view.approvals:
        lines.append(
            "approved by: "
            + ", ".join(
                a.approver + (f" for {a.on_behalf_of}" if a.on_behalf_of else "") + f" via {a.channel}"
                for a in view.approvals
            )
        )
    if view.status == ApprovalStatus.pending:
        missing = view.approvals_needed - view.approvals_had
        lines.append(
            f"missing: {missing} more from {', '.join(view.awaiting) or 'nobody eligible'}; "
            f"expires {fmt_time(view.expires_at)}"
        )
    elif view.status == ApprovalStatus.time_locked and view.timelock_until:
        lines.append(f"time-lock until {fmt_time(view.timelock_until)}; cancel is still possible")
    else:
        lines.append(f"decided by {view.decided_by}: {view.reason}")
    lines.append(f"operation {view.operation_hash}")
    return "\n".join(lines)


class ApprovalProgress(BaseModel):
    """Who must act on an approval, and how far it got: pushed to the parent payment after every change.

    `change` says what just happened (`decided` is set by the payment from the approval's outcome).
    """

    approval_id: str
    change: ApprovalProgressChange
    actor: str | None = None  # who made the change (None: the workflow itself, e.g. at opening)
    status: ApprovalStatus
    approvers: list[str]
    approvals_needed: int
    approvals_had: int
    approved_by: list[str]
    expires_at: datetime
    timelock_seconds: int = 0
    timelock_until: datetime | None = None
    reason: str | None = None


def progress_of(state: ApprovalState, change: ApprovalProgressChange, actor: str | None) -> ApprovalProgress:
    return ApprovalProgress(
        approval_id=state.approval_id,
        change=change,
        actor=actor,
        status=state.status,
        approvers=list(state.tier.approvers),
        approvals_needed=state.approvals_needed,
        approvals_had=len(state.approvals),
        approved_by=list(state.approved_by),
        expires_at=state.expires_at,
        timelock_seconds=state.tier.timelock_seconds,
        timelock_until=state.timelock_until,
        reason=state.reason,
    )


class DecisionRecord(BaseModel):
    """One audit row (and the approvals-table row as it is after the decision)."""

    action: str
    actor: str
    channel: Channel  # as claimed; the audit activity records `temporal` for api/cli without a valid attestation
    at: datetime
    data: dict[str, Any] = Field(default_factory=dict)
    view: ApprovalView
    attestation: str | None = None


class ApprovalEvent(BaseModel):
    """Published on Redis `paygent:approvals:<tenant_id>` and POSTed to webhooks."""

    event_id: str  # stable across retries: receivers deduplicate on it (header X-Paygent-Delivery)
    type: ApprovalEventType
    at: datetime
    approval: ApprovalView


class WebhookDelivery(BaseModel):
    webhook_id: str  # the activity looks up URL and secret by id, so secrets never enter workflow history
    event: ApprovalEvent


class PolicyRequest(BaseModel):
    tenant_id: str
    wallet_id: str | None = None
