"""Payment bookkeeping in Postgres: status changes, and the ledger when a transfer settles."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from paygent.db import reservations
from paygent.db.audit import append_audit
from paygent.db.ledger import write_payment_entries
from paygent.db.schema import payments
from paygent.domain.channels import Channel
from paygent.domain.errors import ErrorType
from paygent.domain.payment import PAYMENT_TERMINAL, PaymentRequest, PaymentStatus
from workflows import payment_types as t


class PaymentActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name=t.ACT_RESERVE)
    async def reserve(self, req: PaymentRequest) -> t.ReserveOutcome:
        """Check the wallet's spending policy and reserve the amount, atomically, before anything is signed."""
        async with self.engine.begin() as conn:
            # the terms reserved are the terms recorded: an x402 server's price, or an approved edit
            await conn.execute(
                payments.update()
                .where(
                    payments.c.id == uuid.UUID(req.payment_id),
                    sa.or_(
                        payments.c.to_address != req.to,
                        payments.c.amount_atomic != req.amount_atomic,
                        payments.c.memo.is_distinct_from(req.memo),
                    ),
                )
                .values(to_address=req.to, amount_atomic=req.amount_atomic, memo=req.memo, updated_at=sa.func.now())
            )
            result = await reservations.reserve(
                conn,
                payment_id=uuid.UUID(req.payment_id),
                wallet_id=uuid.UUID(req.wallet_id),
                to=req.to,
                asset=req.asset,
                amount_atomic=req.amount_atomic,
                principal_id=uuid.UUID(req.requested_by_id),
            )
            data = {"amount_atomic": str(req.amount_atomic)}
            if result.refusal:
                data |= {"limit": result.refusal.limit, "message": result.refusal.message}
            await append_audit(
                conn,
                tenant_id=req.tenant_id,
                actor="system",
                channel=Channel.system,
                action="payment.reserved" if result.reserved else "payment.limit_refused",
                subject_type="payment",
                subject_id=req.payment_id,
                data=data,
            )
        if result.refusal:
            return t.ReserveOutcome(reserved=False, limit=result.refusal.limit, message=result.refusal.message)
        return t.ReserveOutcome(reserved=result.reserved)

    @activity.defn(name=t.ACT_MARK_STATUS)
    async def mark_status(self, change: t.StatusChange) -> None:
        """Idempotent; a terminal status is never overwritten (a replayed retry cannot resurrect a payment)."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(payments.c.status, payments.c.tenant_id)
                    .where(payments.c.id == uuid.UUID(change.payment_id))
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise ApplicationError(
                    f"payment {change.payment_id} not recorded", type=ErrorType.payment_not_recorded, non_retryable=True
                )  # retrying cannot make the row appear
            if row.status == change.status or row.status in PAYMENT_TERMINAL:
                return
            await conn.execute(
                payments.update()
                .where(payments.c.id == uuid.UUID(change.payment_id))
                .values(status=change.status, failure_reason=change.reason, updated_at=sa.func.now())
            )
            if change.status in PAYMENT_TERMINAL and not change.hold_reservation:  # the budget is given back
                await reservations.settle_reservation(conn, uuid.UUID(change.payment_id), reservations.RELEASED)
            await append_audit(
                conn,
                tenant_id=row.tenant_id,
                actor=change.actor,
                channel=Channel.system,
                action=f"payment.{change.status}",
                subject_type="payment",
                subject_id=change.payment_id,
                data={"reason": change.reason, **change.details} if change.reason else change.details,
            )

    @activity.defn(name=t.ACT_SETTLE)
    async def settle(self, s: t.Settlement) -> None:
        """Final status from the receipt; on success one debit and one credit (unique per payment/account)."""
        pid = uuid.UUID(s.payment_id)
        status = PaymentStatus.confirmed if s.receipt.succeeded else PaymentStatus.failed
        reason = None if s.receipt.succeeded else f"TransferReverted: {s.receipt.revert_reason or 'reverted'}"
        async with self.engine.begin() as conn:
            current = await conn.scalar(sa.select(payments.c.status).where(payments.c.id == pid).with_for_update())
            if current in PAYMENT_TERMINAL:
                return
            await conn.execute(
                payments.update()
                .where(payments.c.id == pid)
                .values(
                    status=status,
                    failure_reason=reason,
                    block_number=s.receipt.block_number,
                    tx_hash=s.receipt.tx_hash,
                    updated_at=sa.func.now(),
                )
            )
            await reservations.settle_reservation(
                conn, pid, reservations.COMMITTED if s.receipt.succeeded else reservations.RELEASED
            )
            if s.receipt.succeeded:
                await write_payment_entries(
                    conn,
                    tenant_id=s.tenant_id,
                    payment_id=pid,
                    wallet_id=s.wallet_id,
                    to=s.to,
                    asset=s.asset,
                    amount_atomic=s.amount_atomic,
                    tx_hash=s.receipt.tx_hash,
                )
            await append_audit(
                conn,
                tenant_id=s.tenant_id,
                actor="system",
                channel=Channel.system,
                action=f"payment.{status}",
                subject_type="payment",
                subject_id=s.payment_id,
                data={
                    "tx_hash": s.receipt.tx_hash,
                    "block_number": s.receipt.block_number,
                    "gas_used": s.receipt.gas_used,
                    "reason": reason,
                },
            )
