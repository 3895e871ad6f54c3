"""The reconcile workflow's public contract: names, inputs, outputs, and the events it publishes.

One reconcile pass: list wallets -> read the safe head -> per wallet settle what closed unpaid or unconfirmed,
then scan the new blocks -> publish findings as webhook events. Each chain's ChainWorkflow (workflows/chain.py)
runs it as a tick; `ReconcileWorkflow` runs one pass on its own. Activities live in activities/reconcile.py.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from paygent.domain import reconcile as rules

WORKFLOW_NAME = "ReconcileWorkflow"
# The Temporal Schedule that started a ReconcileWorkflow every tick before ChainWorkflow: `paygent stack up`
# deletes it from stacks that still have it.
SCHEDULE_ID = "paygent-reconcile"
WORKFLOW_ID = "paygent-reconcile"  # the schedule appended the tick's time to it

ACT_LIST_WALLETS = "reconcile.list_wallets"
ACT_SAFE_HEAD = "reconcile.safe_head"
ACT_SETTLE_OPEN = "reconcile.settle_open"
ACT_SCAN = "reconcile.scan_wallet"
ACT_SWEEP_ORPHANS = "reconcile.sweep_orphans"  # activities/orphans.py

# Event types (audit actions too). A late settlement's actions are spelled where they are written, in
# paygent/db/reconcile.py (`confirm_payment`): the database layer does not import workflows.
AUTHORIZATION_EXPIRED = "payment.authorization_expired"
MISMATCH = rules.MISMATCH_OPENED  # a difference between ledger and chain (paygent.domain.reconcile.compare_balances)
MISMATCH_RESOLVED = rules.MISMATCH_RESOLVED  # one that resolved (audited and published once each)


class ReconcileInput(BaseModel):
    """Empty for a pass. A run that continues as new carries the wallets it has not done yet."""

    remaining: list[WalletRef] | None = None
    safe_head: SafeHead | None = None
    mismatches: int = 0
    blocks_scanned: int = 0
    findings: int = 0
    wallets: int = 0


class WalletRef(BaseModel):
    tenant_id: str
    wallet_id: str
    address: str


class SafeHead(BaseModel):
    block_number: int  # newest block `confirmations` deep; -1 when the chain is shorter
    timestamp: int  # the later of that block's timestamp and the wall clock (for validBefore)


class WalletRequest(BaseModel):
    wallet: WalletRef
    safe_head: SafeHead


class Finding(BaseModel):
    """Something the reconciler changed or found: audited already; published as a webhook event."""

    event_id: str  # stable across reruns: receivers deduplicate on it
    type: str
    tenant_id: str
    data: dict[str, Any] = Field(default_factory=dict)


class WalletResult(BaseModel):
    findings: list[Finding] = Field(default_factory=list)
    blocks_scanned: int = 0


class ReconcileResult(BaseModel):
    wallets: int
    blocks_scanned: int
    mismatches: int
    findings: int


ReconcileInput.model_rebuild()


class SweptRow(BaseModel):
    subject: str  # payment | approval | agent_run
    id: str
    workflow_status: str  # how its workflow closed: Terminated, Canceled, Failed, TimedOut
    status: str  # the row's new status
    reservation: str | None = None  # payments: released or held


class SweepResult(BaseModel):
    """Rows whose workflow had closed while they were not final, and what they were ended as."""

    ended: list[SweptRow] = Field(default_factory=list)
