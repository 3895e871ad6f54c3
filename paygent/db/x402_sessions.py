"""x402 sessions in Postgres: the session row, its budget reservation, and the moves of each paid request.

The budget is one row of `reservations` keyed by the session's id (migration 0015). A paid request moves its
price out of it into a reservation of its own payment row in the transaction that signs (`take_from_session`),
so the budget, the wallet's velocity limits and the agent's budget always count each atomic unit once. Closing
releases what is left of the session's row; a request's own reservation follows the payment (committed when it
settles; held until its authorization expires otherwise, as for any x402 payment: the reconciler ends it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db import reservations as res
from paygent.db.schema import Amount, metadata

x402_sessions = sa.Table(
    "x402_sessions",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id"), nullable=False),
    sa.Column("requested_by", UUID(as_uuid=True), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # paygent.domain.x402_session.SessionStatus
    sa.Column("asset", sa.Text, nullable=False),
    sa.Column("budget_atomic", Amount, nullable=False),
    sa.Column("max_price_atomic", Amount, nullable=True),
    sa.Column("spent_atomic", Amount, nullable=False, server_default="0"),
    sa.Column("held_atomic", Amount, nullable=False, server_default="0"),
    sa.Column("origins", ARRAY(sa.Text), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("workflow_id", sa.Text, nullable=False, unique=True),
    sa.Column("details", JSONB, nullable=False, server_default="{}"),  # reason, last_error
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("tenant_id", "requested_by", "idempotency_key", name="x402_sessions_idempotency"),
)


@dataclass(frozen=True)
class RecordedSession:
    row: RowMapping
    created: bool


async def record_session(conn: AsyncConnection, values: dict) -> RecordedSession:
    """Insert once per (tenant, principal, idempotency key); the existing row when the key was used before."""
    inserted = await conn.scalar(
        pg_insert(x402_sessions)
        .values(**values)
        .on_conflict_do_nothing(constraint="x402_sessions_idempotency")
        .returning(x402_sessions.c.id)
    )
    row = (
        (
            await conn.execute(
                sa.select(x402_sessions).where(
                    x402_sessions.c.tenant_id == values["tenant_id"],
                    x402_sessions.c.requested_by == values["requested_by"],
                    x402_sessions.c.idempotency_key == values["idempotency_key"],
                )
            )
        )
        .mappings()
        .one()
    )
    return RecordedSession(row=row, created=inserted is not None)


async def load_session(conn: AsyncConnection, session_id: uuid.UUID) -> RowMapping | None:
    return (await conn.execute(sa.select(x402_sessions).where(x402_sessions.c.id == session_id))).mappings().first()


async def take_from_session(conn: AsyncConnection, session_id: uuid.UUID, payment_id: uuid.UUID, amount: int) -> bool:
    """Move `amount` of the session's reservation to the payment's own; False when the session has not that much
    left. Idempotent per payment. The payment's reservation keeps the session's start time, so rolling windows
    count the amount exactly as before the move."""
    if await conn.scalar(sa.select(res.reservations.c.status).where(res.reservations.c.payment_id == payment_id)):
        return True
    taken = (
        await conn.execute(
            res.reservations.update()
            .where(
                res.reservations.c.payment_id == session_id,
                res.reservations.c.status == res.RESERVED,
                res.reservations.c.amount_atomic >= amount,
            )
            .values(amount_atomic=res.reservations.c.amount_atomic - amount)
            .returning(
                res.reservations.c.wallet_id,
                res.reservations.c.asset,
                res.reservations.c.agent_id,
                res.reservations.c.created_at,
            )
        )
    ).first()
    if taken is None:
        return False
    await conn.execute(
        res.reservations.insert().values(
            payment_id=payment_id,
            wallet_id=taken.wallet_id,
            asset=taken.asset,
            amount_atomic=amount,
            status=res.RESERVED,
            agent_id=taken.agent_id,
            created_at=taken.created_at,
        )
    )
    return True


async def add_outcome(conn: AsyncConnection, session_id: uuid.UUID, *, spent: int = 0, held: int = 0) -> None:
    await conn.execute(
        x402_sessions.update()
        .where(x402_sessions.c.id == session_id)
        .values(
            spent_atomic=x402_sessions.c.spent_atomic + spent,
            held_atomic=x402_sessions.c.held_atomic + held,
            updated_at=sa.func.now(),
        )
    )


async def set_last_error(conn: AsyncConnection, session_id: uuid.UUID, message: str) -> None:
    await conn.execute(
        x402_sessions.update()
        .where(x402_sessions.c.id == session_id)
        .values(
            details=x402_sessions.c.details.op("||")(sa.cast({"last_error": message}, JSONB)),
            updated_at=sa.func.now(),
        )
    )
