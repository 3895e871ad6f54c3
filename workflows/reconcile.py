"""ReconcileWorkflow: keep every wallet's ledger equal to the chain, one pass per tick of the chain's workflow.

The workflow decides (which wallets, up to which block, what to publish); activities read the chain and write
rows. A run reads the safe head once (the newest block `confirmations` deep) so every wallet is reconciled up
to the same block, then per wallet: settle payments left open (x402 authorizations, receipt waits that gave
up), scan the new blocks, publish each finding to the tenant's webhooks. ChainWorkflow (workflows/chain.py) runs
the pass every PAYGENT_RECONCILE_INTERVAL_SECONDS as `ReconcileWorkflow.tick`; a run of ReconcileWorkflow itself is
one pass, and with very many wallets continues as new with the wallets it has not done.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError

from paygent import search_attributes as sa
from workflows import reconcile_types as r
from workflows.activity_options import (
    NOTIFY_DELIVER,
    NOTIFY_LOOKUP,
    RECONCILE_HEAD,
    RECONCILE_LIST,
    RECONCILE_SCAN,
    RECONCILE_SETTLE,
)
from workflows.webhook_types import ACT_DELIVER_EVENT, ACT_SUBSCRIBERS, EventDelivery, SubscribersRequest, WebhookEvent

PARALLEL_WALLETS = 16  # wallets reconciled at once: each is a few RPC calls and two activities
# Each tick also ends the rows whose workflow closed while they were open (terminated, say); runs from before
# the patch replay without that activity.
PATCH_SWEEP_ORPHANS = "reconcile-sweeps-orphans"


@workflow.defn(name=r.WORKFLOW_NAME)
class ReconcileWorkflow:
    """One reconcile pass as a run of its own. Each chain's ChainWorkflow (workflows/chain.py) now runs the same
    pass as a tick (`tick`, inline: no child run per tick crowds the workflow list); this workflow stays registered
    so runs that an old `paygent-reconcile` schedule started replay and finish, and a pass can still be run on
    demand (`temporal workflow start --type ReconcileWorkflow`)."""

    @workflow.run
    async def run(self, inp: r.ReconcileInput) -> r.ReconcileResult:
        return await self.tick(inp)

    async def tick(self, inp: r.ReconcileInput, *, split: bool = True) -> r.ReconcileResult:
        """The pass. With `split`, a run with very many wallets continues as new with the wallets it has not
        done; the chain workflow passes False and decides about continue-as-new between ticks."""
        wallets = inp.remaining
        if wallets is None:
            wallets = await workflow.execute_activity(
                r.ACT_LIST_WALLETS,
                result_type=list[r.WalletRef],
                **RECONCILE_LIST,
                summary="List tenants' wallets",
            )
        head = inp.safe_head or await workflow.execute_activity(
            r.ACT_SAFE_HEAD,
            result_type=r.SafeHead,
            **RECONCILE_HEAD,
            summary="Read the safe head",
        )
        totals = inp.model_copy(update={"remaining": None, "safe_head": head})
        workflow.set_current_details(f"Reconciling {len(wallets)} wallets up to block {head.block_number}")
        for start in range(0, len(wallets), PARALLEL_WALLETS):
            group = wallets[start : start + PARALLEL_WALLETS]
            for result in await asyncio.gather(*(self._wallet(w, head) for w in group)):
                totals.blocks_scanned += result.blocks_scanned
                totals.findings += len(result.findings)
                totals.mismatches += sum(1 for f in result.findings if f.type == r.MISMATCH)
            totals.wallets += len(group)
            if totals.mismatches:
                workflow.upsert_search_attributes([sa.RECONCILE.value_set(sa.RECONCILE_MISMATCH)])
            rest = wallets[start + PARALLEL_WALLETS :]
            if split and rest and workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(totals.model_copy(update={"remaining": rest}))
        await self._sweep_orphans()
        workflow.upsert_search_attributes(
            [sa.RECONCILE.value_set(sa.RECONCILE_MISMATCH if totals.mismatches else sa.RECONCILE_CLEAN)]
        )
        workflow.set_current_details(
            f"{totals.wallets} wallets up to block {head.block_number}: "
            f"{totals.mismatches} mismatches, {totals.findings} findings"
        )
        return r.ReconcileResult(
            wallets=totals.wallets,
            blocks_scanned=totals.blocks_scanned,
            mismatches=totals.mismatches,
            findings=totals.findings,
        )

    async def _sweep_orphans(self) -> None:
        """End rows whose workflow closed while they were open (a terminate): activities/orphans.py. A sweep that
        fails waits for the next tick."""
        if not workflow.patched(PATCH_SWEEP_ORPHANS):
            return
        try:
            await workflow.execute_activity(
                r.ACT_SWEEP_ORPHANS,
                result_type=r.SweepResult,
                **RECONCILE_SETTLE,
                summary="End rows whose workflow closed",
            )
        except ActivityError as err:
            workflow.logger.warning("orphan sweep not done this tick: %s", err.cause or err)

    async def _wallet(self, wallet: r.WalletRef, head: r.SafeHead) -> r.WalletResult:
        """Settle what is open, then scan; a wallet whose chain reads keep failing waits for the next tick."""
        req = r.WalletRequest(wallet=wallet, safe_head=head)
        result = r.WalletResult()
        try:
            opened = await workflow.execute_activity(
                r.ACT_SETTLE_OPEN,
                req,
                result_type=r.WalletResult,
                **RECONCILE_SETTLE,
                summary=f"Open authorizations and receipts of {wallet.address}",
            )
            scanned = await workflow.execute_activity(
                r.ACT_SCAN,
                req,
                result_type=r.WalletResult,
                **RECONCILE_SCAN,
                summary=f"Scan {wallet.address} up to block {head.block_number}",
            )
        except ActivityError as err:
            workflow.logger.warning("wallet %s not reconciled this tick: %s", wallet.wallet_id, err.cause or err)
            return result
        result.findings = opened.findings + scanned.findings
        result.blocks_scanned = scanned.blocks_scanned
        await asyncio.gather(*(self._publish(f) for f in result.findings))
        return result

    async def _publish(self, finding: r.Finding) -> None:
        """Webhook events for a finding (already audited); a failed delivery never fails the run."""
        event = WebhookEvent(
            event_id=finding.event_id,
            type=finding.type,
            at=workflow.now().isoformat(),
            tenant_id=finding.tenant_id,
            data=finding.data,
        )
        try:
            ids = await workflow.execute_activity(
                ACT_SUBSCRIBERS,
                SubscribersRequest(tenant_id=finding.tenant_id, event_type=finding.type),
                result_type=list[str],
                **NOTIFY_LOOKUP,
                summary=f"webhooks for {finding.type}",
            )
            results = await asyncio.gather(
                *(
                    workflow.execute_activity(
                        ACT_DELIVER_EVENT,
                        EventDelivery(tenant_id=finding.tenant_id, webhook_id=wid, event=event),
                        **NOTIFY_DELIVER,
                        summary=f"webhook {finding.type}",
                    )
                    for wid in ids
                ),
                return_exceptions=True,
            )
        except ActivityError as exc:
            workflow.logger.warning("could not publish %s: %s", finding.event_id, exc)
            return
        for wid, res in zip(ids, results, strict=False):
            if isinstance(res, BaseException):
                workflow.logger.warning("webhook %s gave up on %s: %s", wid, finding.event_id, res)
