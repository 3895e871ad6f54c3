"""Rows left open by a workflow that closed: find them, and end them by the rules of paygent.domain.orphans.

Each write locks its row and re-checks it, so a row that reached its end meanwhile (its workflow settled it, the
reconciler confirmed it) is left alone, and a second sweep writes nothing. Runs inside the caller's tenant
transaction (row-level security).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db import reservations as res
from paygent.db.agent_events import record_event
from paygent.db.agent_schema import agent_events, agent_runs
from paygent.db.audit import append_audit
from paygent.db.schema import approvals, payment_transactions, payments
from paygent.domain.agent_run import RUN_TERMINAL, EmitEvent, RunEventType, RunStatus
from paygent.domain.approval_state import APPROVAL_FINAL, ApprovalStatus
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.orphans import PaymentVerdict, Reservation
from paygent.domain.payment import PAYMENT_TERMINAL, RECEIPT_WAIT_GAVE_UP, PaymentKind

PAYMENT, APPROVAL, RUN = "payment", "approval", "agent_run"


@dataclass(frozen=True)
class OpenRow:
    subject: str  # payment | approval | agent_run
    id: str
    workflow_id: str


@dataclass(frozen=True)
class Who:
    """Who ended the workflow, for the audit row: `temporal` when an operator used Temporal's tools."""

    actor: str
    channel: Channel


async def open_rows(conn: AsyncConnection) -> list[OpenRow]:
    """Every row of the tenant that is not final, with its workflow id (a payment left to the reconciler is not
    open: its workflow completed on purpose)."""
    pays = await conn.execute(
        sa.select(payments.c.id, payments.c.workflow_id).where(
            payments.c.status.not_in(PAYMENT_TERMINAL),
            sa.not_(payments.c.details.has_key(RECEIPT_WAIT_GAVE_UP)),
        )
    )
    apps = await conn.execute(
        sa.select(approvals.c.id, approvals.c.workflow_id).where(approvals.c.status.not_in(APPROVAL_FINAL))
    )
    runs = await conn.execute(
        sa.select(agent_runs.c.id, agent_runs.c.workflow_id).where(agent_runs.c.status.not_in(RUN_TERMINAL))
    )
    return (
        [OpenRow(PAYMENT, str(r.id), r.workflow_id) for r in pays]
        + [OpenRow(APPROVAL, str(r.id), r.workflow_id) for r in apps]
        + [OpenRow(RUN, str(r.id), r.workflow_id) for r in runs]
    )


async def payment_kind_and_signed(conn: AsyncConnection, payment_id: str) -> tuple[PaymentKind, bool] | None:
    """The payment's kind and whether anything was signed for it (a stored transaction or x402 authorization)."""
    pid = uuid.UUID(payment_id)
    row = (
        await conn.execute(
            sa.select(payments.c.kind, payments.c.signed_tx, payments.c.details).where(payments.c.id == pid)
        )
    ).first()
    if row is None:
        return None
    stored = await conn.scalar(sa.select(sa.func.count()).where(payment_transactions.c.payment_id == pid))
    signed = bool(stored) or row.signed_tx is not None or "signed" in (row.details or {})
    return PaymentKind(row.kind), signed


async def end_payment(
    conn: AsyncConnection, payment_id: str, verdict: PaymentVerdict, reason: str, who: Who, data: dict[str, Any]
) -> bool:
    """Apply the verdict; False when the payment had meanwhile reached its end (nothing written)."""
    pid = uuid.UUID(payment_id)
    row = (
        await conn.execute(
            sa.select(payments.c.status, payments.c.details, payments.c.tenant_id)
            .where(payments.c.id == pid)
            .with_for_update()
        )
    ).first()
    if row is None or row.status in PAYMENT_TERMINAL or RECEIPT_WAIT_GAVE_UP in (row.details or {}):
        return False
    values: dict[str, Any] = {"status": verdict.status, "failure_reason": reason, "updated_at": sa.func.now()}
    if verdict.leave_to_reconciler:
        values["details"] = payments.c.details.op("||")(sa.func.jsonb_build_object(RECEIPT_WAIT_GAVE_UP, sa.func.now()))
    await conn.execute(payments.update().where(payments.c.id == pid).values(**values))
    if verdict.reservation == Reservation.released:
        await res.settle_reservation(conn, pid, res.RELEASED)
    action = "payment.receipt_wait_gave_up" if verdict.leave_to_reconciler else f"payment.{verdict.status}"
    await append_audit(
        conn,
        tenant_id=row.tenant_id,
        actor=who.actor,
        channel=who.channel,
        action=action,
        subject_type=AuditSubject.payment,
        subject_id=payment_id,
        data={
            "reason": reason,
            "previous_status": row.status,
            "reservation": verdict.reservation,
            "explanation": verdict.explanation,
            **data,
        },
    )
    return True


async def end_approval(
    conn: AsyncConnection, approval_id: str, status: ApprovalStatus, reason: str, who: Who, data: dict[str, Any]
) -> bool:
    row = (
        await conn.execute(
            sa.select(approvals.c.status, approvals.c.tenant_id, approvals.c.revision)
            .where(approvals.c.id == approval_id)
            .with_for_update()
        )
    ).first()
    if row is None or row.status in APPROVAL_FINAL:
        return False
    await conn.execute(
        approvals.update()
        .where(approvals.c.id == approval_id)
        .values(
            status=status,
            decided_by=who.actor,
            reason=reason,
            awaiting=[],
            revision=row.revision + 1,
            updated_at=sa.func.now(),
        )
    )
    await append_audit(
        conn,
        tenant_id=row.tenant_id,
        actor=who.actor,
        channel=who.channel,
        action=AuditAction.approval_decided,
        subject_type=AuditSubject.approval,
        subject_id=approval_id,
        data={"status": status, "decided_by": who.actor, "reason": reason, "previous_status": row.status, **data},
    )
    return True


async def end_run(
    conn: AsyncConnection, run_id: str, status: RunStatus, reason: str, who: Who, data: dict[str, Any]
) -> bool:
    """The run's terminal event (`agent_failed`, so event streams end) moves its status; then the audit row."""
    rid = uuid.UUID(run_id)
    row = (
        await conn.execute(
            sa.select(agent_runs.c.status, agent_runs.c.tenant_id).where(agent_runs.c.id == rid).with_for_update()
        )
    ).first()
    if row is None or row.status in RUN_TERMINAL:
        return False
    last = await conn.scalar(sa.select(sa.func.max(agent_events.c.seq)).where(agent_events.c.run_id == rid))
    await record_event(
        conn,
        EmitEvent(
            run_id=run_id,
            seq=(last or 0) + 1,
            type=RunEventType.agent_failed,
            data={"status": status, "error": reason, "swept": True},
        ),
    )
    await append_audit(
        conn,
        tenant_id=row.tenant_id,
        actor=who.actor,
        channel=who.channel,
        action=f"agent_run.{status}",
        subject_type=AuditSubject.agent_run,
        subject_id=run_id,
        data={"reason": reason, "previous_status": row.status, **data},
    )
    return True
