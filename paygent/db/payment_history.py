"""A payment's status history, read from its audit rows (the audit log already records every step).

A payment that was closed as not paid and later found settled shows both steps: e.g. `cancelled`, then
`confirmed` by `payment.settled_late`.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.schema import audit_log
from paygent.domain.payment import CANCEL_REFUSED, PaymentStatus

STATUS_OF_ACTION = {
    "payment.requested": PaymentStatus.pending,
    "payment.awaiting_approval": PaymentStatus.awaiting_approval,
    "payment.time_locked": PaymentStatus.time_locked,
    "payment.signing": PaymentStatus.signing,
    "payment.submitted": PaymentStatus.submitted,
    "payment.confirmed": PaymentStatus.confirmed,
    "payment.failed": PaymentStatus.failed,
    "payment.cancelled": PaymentStatus.cancelled,
    "payment.refused": PaymentStatus.refused,
    "payment.settled_late": PaymentStatus.confirmed,
    "payment.reconciled": PaymentStatus.confirmed,
    "payment.reorged_out": PaymentStatus.reorged_out,
}
# Steps that change no status but matter to whoever reads the history.
EVENTS = frozenset(
    {
        "payment.receipt_wait_gave_up",
        "payment.authorization_expired",
        "payment.transaction_matched",
        "payment.reorged",
        "payment.reincluded",
        CANCEL_REFUSED,
    }
)


async def status_history(conn: AsyncConnection, payment_id: uuid.UUID) -> list[dict]:
    rows = (
        await conn.execute(
            sa.select(audit_log.c.at, audit_log.c.actor, audit_log.c.action, audit_log.c.data)
            .where(
                audit_log.c.subject_type == "payment",
                audit_log.c.subject_id == str(payment_id),
                audit_log.c.action.in_([*STATUS_OF_ACTION, *EVENTS]),
            )
            .order_by(audit_log.c.id)
        )
    ).all()
    return [
        {
            "at": r.at.isoformat(),
            "action": r.action,
            "status": STATUS_OF_ACTION.get(r.action),
            "actor": r.actor,
            "reason": (r.data or {}).get("reason"),
        }
        for r in rows
    ]
