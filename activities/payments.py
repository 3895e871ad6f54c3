"""Payment bookkeeping in Postgres: status changes, and the ledger when a transfer settles."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from paygent.db import policies, reservations
from paygent.db.audit import append_audit
from paygent.db.ledger import write_payment_entries
from paygent.db.payment_status import PaymentNotRecorded, record_status
from paygent.db.schema import payments
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.errors import ErrorType
from paygent.domain.money import Unit
from paygent.domain.payment import PAYMENT_TERMINAL, PaymentRequest, PaymentStatus
from workflows import payment_types as pt


class PaymentActivities:
    def __init__(self, engine: AsyncEngine, *, decimals: int = 6) -> None:
        self.engine = engine
        self.decimals = decimals  # of the default dev policy, when a tenant stored none (as approval.load_policy)

    @activity.defn(name=pt.ACT_RESERVE)
    async def reserve(self, req: PaymentRequest) -> pt.ReserveOutcome:
        """Check the wallet's spending policy and reserve the amount, atomically, before anything is signed."""
        async with self.engine.begin() as conn:
            return await self._reserve(conn, req)

    @activity.defn(name=pt.ACT_RESERVE_WITH_POLICY)
    async def reserve_with_policy(self, req: PaymentRequest) -> pt.ReserveOutcome:
        """`reserve`, and in the same transaction read the approval policy in force (one step, not two)."""
        async with self.engine.begin() as conn:
            outcome = await self._reserve(conn, req)
            if outcome.reserved:
                outcome.policy = await policies.load_policy(conn, req.tenant_id, req.wallet_id, decimals=self.decimals)
        return outcome

    async def _reserve(self, conn: AsyncConnection, req: PaymentRequest) -> pt.ReserveOutcome:
        # A payment already closed (cancelled while this activity was in flight) reserves nothing: the row lock
        # orders this against mark_status, which releases the reservation when the payment closes.
        status = await conn.scalar(
            sa.select(payments.c.status).where(payments.c.id == uuid.UUID(req.payment_id)).with_for_update()
        )
        if status in PAYMENT_TERMINAL:
            return pt.ReserveOutcome(reserved=False, limit="closed", message=f"the payment is already {status}")
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
            unit=Unit(req.decimals, req.asset),
        )
        data = {"amount_atomic": str(req.amount_atomic)}
        if result.refusal:
            data |= {  # atomic figures as strings, like amount_atomic (exact in any JSON reader)
                k: str(v) if isinstance(v, int) else v for k, v in result.refusal.model_dump(exclude_none=True).items()
            }
        await append_audit(
            conn,
            tenant_id=req.tenant_id,
            actor="system",
            channel=Channel.system,
            action=AuditAction.payment_reserved if result.reserved else AuditAction.payment_limit_refused,
            subject_type=AuditSubject.payment,
            subject_id=req.payment_id,
            data=data,
        )
        if result.refusal:
            return pt.ReserveOutcome(reserved=False, limit=result.refusal.limit, message=result.refusal.message)
        return pt.ReserveOutcome(reserved=result.reserved)

    @activity.defn(name=pt.ACT_MARK_STATUS)
    async def mark_status(self, change: pt.StatusChange) -> None:
        """Idempotent; a terminal status is never overwritten (a replayed retry cannot resurrect a payment)."""
        async with self.engine.begin() as conn:
            await record_status_or_fail(
                conn,
                change.payment_id,
                change.status,
                reason=change.reason,
                actor=change.actor,
                details=change.details,
                hold_reservation=change.hold_reservation,
                channel=Channel(change.channel),
            )

    @activity.defn(name=pt.ACT_RECORD_EVENT)
    async def record_event(self, event: pt.PaymentEvent) -> None:
        """Audit a step that moves no status (a refused Temporal cancel); a retry after a lost answer may write
        the same record twice."""
        async with self.engine.begin() as conn:
            tenant_id = await conn.scalar(
                sa.select(payments.c.tenant_id).where(payments.c.id == uuid.UUID(event.payment_id))
            )
            if tenant_id is None:
                raise ApplicationError(
                    f"payment {event.payment_id} not recorded", type=ErrorType.payment_not_recorded, non_retryable=True
                )
            await append_audit(
                conn,
                tenant_id=tenant_id,
                actor=event.actor,
                channel=Channel(event.channel),
                action=event.action,
                subject_type=AuditSubject.payment,
                subject_id=event.payment_id,
                data=event.data,
            )

    @activity.defn(name=pt.ACT_SETTLE)
    async def settle(self, s: pt.Settlement) -> None:
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
                subject_type=AuditSubject.payment,
                subject_id=s.payment_id,
                data={
                    "tx_hash": s.receipt.tx_hash,
                    "block_number": s.receipt.block_number,
                    "gas_used": s.receipt.gas_used,
                    "reason": reason,
                },
            )


async def record_status_or_fail(conn: AsyncConnection, payment_id: str, status: PaymentStatus, **change) -> bool:
    """paygent.db.payment_status.record_status for an activity: a missing row is final, never retried."""
    try:
        return await record_status(conn, payment_id, status, **change)
    except PaymentNotRecorded as err:
        raise ApplicationError(str(err), type=ErrorType.payment_not_recorded, non_retryable=True) from None
