"""A payment's status change, recorded in the caller's transaction with its audit row.

Shared by the activity that records a bare status change (payments.mark_status) and by the steps that record
their own status with their side effect (payments.sign_and_send records `submitted` once the bytes are sent).
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db import reservations
from paygent.db.audit import append_audit
from paygent.db.schema import payments
from paygent.domain.audit_names import AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.payment import PAYMENT_TERMINAL, PaymentStatus


class PaymentNotRecorded(LookupError):
    """No row for this payment id: the activities make it a final (non-retryable) ApplicationError."""


async def record_status(
    conn: AsyncConnection,
    payment_id: str,
    status: PaymentStatus,
    *,
    reason: str | None = None,
    actor: str = "system",
    details: dict[str, Any] | None = None,
    hold_reservation: bool = False,
    channel: Channel = Channel.system,
) -> bool:
    """Idempotent; a terminal status is never overwritten (a replayed retry cannot resurrect a payment).
    A terminal status gives the reservation back unless `hold_reservation`. True when the row changed."""
    pid = uuid.UUID(payment_id)
    row = (
        await conn.execute(
            sa.select(payments.c.status, payments.c.tenant_id).where(payments.c.id == pid).with_for_update()
        )
    ).first()
    if row is None:
        raise PaymentNotRecorded(f"payment {payment_id} not recorded")
    if row.status == status or row.status in PAYMENT_TERMINAL:
        return False
    await conn.execute(
        payments.update()
        .where(payments.c.id == pid)
        .values(status=status, failure_reason=reason, updated_at=sa.func.now())
    )
    if status in PAYMENT_TERMINAL and not hold_reservation:  # the budget is given back
        await reservations.settle_reservation(conn, pid, reservations.RELEASED)
    details = details or {}
    await append_audit(
        conn,
        tenant_id=row.tenant_id,
        actor=actor,
        channel=channel,
        action=f"payment.{status}",
        subject_type=AuditSubject.payment,
        subject_id=payment_id,
        data={"reason": reason, **details} if reason else details,
    )
    return True
