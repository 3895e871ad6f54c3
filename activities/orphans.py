"""The orphan sweep: rows whose workflow closed while the row was not final, ended by the same rule the
workflows follow on a cancellation (paygent.domain.orphans).

A terminate cannot be handled inside a workflow (no code runs), nor can a cancel of a run on code from before
`payment-honours-temporal-cancel`, a workflow that failed, or one that timed out. The reconcile tick calls this:
per tenant, the open payments, approvals and agent runs; Temporal's visibility says which of their workflows
closed (one list call per batch, not one call per row); each hit is checked again with `describe` (the latest run:
a `reset` terminates a run and carries on in a new one) and must have closed `grace_seconds` ago, so an activity
still finishing for a just-terminated workflow (a signing step) lands before the row is judged.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WorkflowExecutionStatus

from paygent.db import orphans as db
from paygent.db.reconcile import tenant_ids
from paygent.db.tenancy import tenant_transaction
from paygent.domain import orphans as rules
from paygent.domain.channels import Channel
from workflows import reconcile_types as r

BATCH = 50  # workflow ids per visibility query
CLOSED_AS = {
    WorkflowExecutionStatus.TERMINATED: rules.ClosedAs.terminated,
    WorkflowExecutionStatus.CANCELED: rules.ClosedAs.canceled,
    WorkflowExecutionStatus.FAILED: rules.ClosedAs.failed,
    WorkflowExecutionStatus.TIMED_OUT: rules.ClosedAs.timed_out,
}


class OrphanActivities:
    """Register `OrphanActivities(engine, client, grace_seconds=...).sweep_orphans` on a worker."""

    def __init__(self, engine: AsyncEngine, client: Client, *, grace_seconds: float) -> None:
        self.engine = engine
        self.client = client
        self.grace = timedelta(seconds=grace_seconds)

    @activity.defn(name=r.ACT_SWEEP_ORPHANS)
    async def sweep_orphans(self) -> r.SweepResult:
        result = r.SweepResult()
        async with self.engine.connect() as conn:
            tenants = await tenant_ids(conn)
        for tenant_id in tenants:
            async with tenant_transaction(self.engine, tenant_id) as conn:
                rows = await db.open_rows(conn)
            for start in range(0, len(rows), BATCH):
                batch = rows[start : start + BATCH]
                closed = await self._closed({row.workflow_id for row in batch})
                for row in batch:
                    if row.workflow_id in closed:
                        swept = await self._end(tenant_id, row, *closed[row.workflow_id])
                        if swept is not None:
                            result.ended.append(swept)
        for swept in result.ended:
            activity.logger.warning(
                "swept %s %s: workflow %s -> %s", swept.subject, swept.id, swept.workflow_status, swept.status
            )
        return result

    async def _closed(self, workflow_ids: set[str]) -> dict[str, tuple[rules.ClosedAs, str | None, str]]:
        """Which of these workflows closed other than by completing, long enough ago: id -> (how, detail, who)."""
        quoted = ", ".join("'" + w.replace("'", "") + "'" for w in sorted(workflow_ids))
        states = ", ".join(f"'{c}'" for c in rules.ORPHANING)
        query = f"WorkflowId IN ({quoted}) AND ExecutionStatus IN ({states})"
        candidates = {wf.id async for wf in self.client.list_workflows(query)}
        cutoff = datetime.now(UTC) - self.grace
        out: dict[str, tuple[rules.ClosedAs, str | None, str]] = {}
        for workflow_id in candidates:
            latest = await self.client.get_workflow_handle(workflow_id).describe()
            closed_as = CLOSED_AS.get(latest.status) if latest.status is not None else None
            if closed_as is None or latest.close_time is None or latest.close_time > cutoff:
                continue  # running again (a reset), completed, or closed too recently
            detail, who = await self._close_detail(workflow_id, latest.run_id)
            out[workflow_id] = (closed_as, detail, who)
        return out

    async def _close_detail(self, workflow_id: str, run_id: str) -> tuple[str | None, str]:
        """The terminate's reason and identity (or the failure's message) from the run's last event."""
        answer = await self.client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(
                namespace=self.client.namespace,
                execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
                maximum_page_size=1,
            )
        )
        if not answer.history.events:
            return None, "temporal"
        event = answer.history.events[0]
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            attrs = event.workflow_execution_terminated_event_attributes
            return attrs.reason or None, attrs.identity or "temporal"
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            return event.workflow_execution_failed_event_attributes.failure.message or None, "system"
        return None, "temporal"

    async def _end(
        self, tenant_id: uuid.UUID, row: db.OpenRow, closed_as: rules.ClosedAs, detail: str | None, actor: str
    ) -> r.SweptRow | None:
        reason = rules.reason(closed_as, detail)
        who = db.Who(
            actor=actor if rules.operator_ended(closed_as) else "system",
            channel=Channel.temporal if rules.operator_ended(closed_as) else Channel.system,
        )
        data = {"workflow_id": row.workflow_id, "workflow_status": str(closed_as), "swept": True}
        async with tenant_transaction(self.engine, tenant_id) as conn:
            if row.subject == db.PAYMENT:
                found = await db.payment_kind_and_signed(conn, row.id)
                if found is None:
                    return None
                verdict = rules.payment_verdict(found[0], closed_as, signed=found[1])
                if not await db.end_payment(conn, row.id, verdict, reason, who, data):
                    return None
                return r.SweptRow(
                    subject=row.subject,
                    id=row.id,
                    workflow_status=closed_as,
                    status=verdict.status,
                    reservation=verdict.reservation,
                )
            if row.subject == db.APPROVAL:
                approval = rules.approval_status(closed_as)
                done, status = await db.end_approval(conn, row.id, approval, reason, who, data), str(approval)
            else:
                run = rules.run_status(closed_as)
                done, status = await db.end_run(conn, row.id, run, reason, who, data), str(run)
        return r.SweptRow(subject=row.subject, id=row.id, workflow_status=closed_as, status=status) if done else None
