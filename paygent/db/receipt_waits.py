"""Payments waiting for their receipt: registered by the receipt wait activity, worked by the chain follower.

A row says: this payment's workflow waits in an activity that completes asynchronously (its task token and ids
are here), for one of its signed attempts (`payment_transactions`) to be mined `confirmations` deep. The chain
follower (activities/chain_follower.py) completes the activity and deletes the row; a retried activity
registers again (the newest token wins). Rows carry `tenant_id` under row-level security (migration
0014_receipt_waits); the follower learns which tenants have waits from `paygent_receipt_wait_tenants`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.schema import metadata, payment_transactions, payments
from paygent.domain.payment import RECEIPT_WAIT_GAVE_UP, PaymentKind, PaymentStatus

receipt_waits = sa.Table(
    "receipt_waits",
    metadata,
    sa.Column("payment_id", UUID(as_uuid=True), sa.ForeignKey("payments.id"), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("chain_id", sa.BigInteger, nullable=False),
    sa.Column("task_queue", sa.Text, nullable=False),
    sa.Column("workflow_id", sa.Text, nullable=False),
    sa.Column("activity_id", sa.Text, nullable=False),
    sa.Column("task_token", sa.LargeBinary, nullable=False),
    sa.Column("request", JSONB, nullable=False),  # the PaymentRequest that was signed (a replacement signs it again)
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("registered_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)


@dataclass
class Wait:
    payment_id: str
    tenant_id: str
    workflow_id: str
    activity_id: str
    task_token: bytes
    request: dict[str, Any]
    attempts: list[Any]  # payment_transactions rows, oldest first (tx_hash, nonce, raw, fees, created_at)


async def register(
    conn: AsyncConnection,
    *,
    payment_id: str,
    tenant_id: str,
    chain_id: int,
    task_queue: str,
    workflow_id: str,
    activity_id: str,
    task_token: bytes,
    request: dict[str, Any],
    attempt: int,
) -> None:
    """Insert, or replace the token of a wait registered by an earlier attempt of the same activity."""
    values = dict(
        payment_id=uuid.UUID(payment_id),
        tenant_id=uuid.UUID(tenant_id),
        chain_id=chain_id,
        task_queue=task_queue,
        workflow_id=workflow_id,
        activity_id=activity_id,
        task_token=task_token,
        request=request,
        attempt=attempt,
    )
    stmt = pg_insert(receipt_waits).values(**values)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[receipt_waits.c.payment_id],
            set_={k: stmt.excluded[k] for k in ("task_token", "activity_id", "workflow_id", "attempt", "task_queue")}
            | {"registered_at": sa.func.now()},
        )
    )


async def tenants_with_waits(conn: AsyncConnection, chain_id: int, task_queue: str) -> list[uuid.UUID]:
    """Before any tenant is chosen (a SECURITY DEFINER function): the tenants that have waits on this chain."""
    return list((await conn.scalars(sa.select(sa.func.paygent_receipt_wait_tenants(chain_id, task_queue)))).all())


async def tenant_waits(conn: AsyncConnection, chain_id: int, task_queue: str) -> list[Wait]:
    """The current tenant's waits on this chain, each with its signed attempts (oldest first)."""
    rows = (
        (
            await conn.execute(
                sa.select(receipt_waits).where(
                    receipt_waits.c.chain_id == chain_id, receipt_waits.c.task_queue == task_queue
                )
            )
        )
        .mappings()
        .all()
    )
    if not rows:
        return []
    attempts: dict[uuid.UUID, list] = {r["payment_id"]: [] for r in rows}
    for a in (
        await conn.execute(
            sa.select(payment_transactions)
            .where(payment_transactions.c.payment_id.in_(list(attempts)))
            .order_by(payment_transactions.c.created_at, payment_transactions.c.nonce)
        )
    ).mappings():
        attempts[a["payment_id"]].append(a)
    return [
        Wait(
            payment_id=str(r["payment_id"]),
            tenant_id=str(r["tenant_id"]),
            workflow_id=r["workflow_id"],
            activity_id=r["activity_id"],
            task_token=bytes(r["task_token"]),
            request=dict(r["request"]),
            attempts=attempts[r["payment_id"]],
        )
        for r in rows
    ]


async def finish(conn: AsyncConnection, payment_id: str, task_token: bytes) -> None:
    """The wait is over: remove it, unless a newer attempt has registered since (its token differs)."""
    await conn.execute(
        receipt_waits.delete().where(
            receipt_waits.c.payment_id == uuid.UUID(payment_id), receipt_waits.c.task_token == task_token
        )
    )


async def unregistered(conn: AsyncConnection, chain_id: int, older_than_seconds: float) -> list[tuple[str, str]]:
    """(payment id, workflow id) of the current tenant's transfers that are `submitted`, signed, not given up,
    unchanged for a while, and have no wait row: a worker died between starting the wait and registering it."""
    rows = await conn.execute(
        sa.select(payments.c.id, payments.c.workflow_id).where(
            payments.c.chain_id == chain_id,
            payments.c.status == PaymentStatus.submitted,
            payments.c.kind == PaymentKind.transfer,
            payments.c.tx_hash.is_not(None),
            sa.not_(payments.c.details.has_key(RECEIPT_WAIT_GAVE_UP)),
            payments.c.updated_at < sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds),
            ~sa.exists().where(receipt_waits.c.payment_id == payments.c.id),
        )
    )
    return [(str(r.id), r.workflow_id) for r in rows]
