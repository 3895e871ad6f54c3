"""Spending reservations: checked and reserved atomically per wallet before anything is signed.

A reservation is `reserved` while a payment is in flight, `committed` once it confirms, and `released` when
it fails, is refused, rejected, expires or is cancelled. Velocity limits count reserved + committed amounts in
the rolling window, so in-flight payments already use the budget: concurrent payments cannot overshoot it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.agents import load_agent_policy
from paygent.db.schema import Amount, metadata, wallets
from paygent.domain.money import ATOMIC, Unit
from paygent.domain.spending import LimitRefusal, SpendingPolicy, check_static, check_velocity, for_asset

spending_policies = sa.Table(
    "spending_policies",
    metadata,
    sa.Column("wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id"), primary_key=True),
    sa.Column("policy", JSONB, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_by", sa.Text, nullable=False),
)

reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("payment_id", UUID(as_uuid=True), sa.ForeignKey("payments.id"), primary_key=True),
    sa.Column("wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id"), nullable=False),
    sa.Column("asset", sa.Text, nullable=False),
    sa.Column("amount_atomic", Amount, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # reserved | committed | released
    sa.Column("agent_id", UUID(as_uuid=True), nullable=True),  # the agent that asked: its budget spans wallets
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("reservations_wallet_window", "wallet_id", "created_at"),
)

RESERVED, COMMITTED, RELEASED = "reserved", "committed", "released"


@dataclass
class ReserveResult:
    reserved: bool
    refusal: LimitRefusal | None = None


async def load_policy(conn: AsyncConnection, wallet_id: uuid.UUID) -> SpendingPolicy:
    raw = await conn.scalar(sa.select(spending_policies.c.policy).where(spending_policies.c.wallet_id == wallet_id))
    return SpendingPolicy.model_validate(raw) if raw else SpendingPolicy()


async def save_policy(conn: AsyncConnection, wallet_id: uuid.UUID, policy: SpendingPolicy, actor: str) -> None:
    from sqlalchemy.dialects.postgresql import insert

    values = {"wallet_id": wallet_id, "policy": policy.model_dump(mode="json"), "updated_by": actor}
    await conn.execute(
        insert(spending_policies)
        .values(values)
        .on_conflict_do_update(
            index_elements=["wallet_id"],
            set_={"policy": values["policy"], "updated_by": actor, "updated_at": sa.func.now()},
        )
    )


async def reserve(
    conn: AsyncConnection,
    *,
    payment_id: uuid.UUID,
    wallet_id: uuid.UUID,
    to: str,
    asset: str,
    amount_atomic: int,
    principal_id: uuid.UUID | None = None,
    budget: bool = False,
    unit: Unit = ATOMIC,
) -> ReserveResult:
    """Idempotent per payment. Must run in a transaction: the wallet row lock serialises reservations against
    a wallet with velocity limits.

    When the payment was asked for by an agent (`principal_id` is an agent), the agent's own policy is checked
    in the same step, under the agent's row lock too, so the tighter of the two wins; its refusals are named
    `agent:<limit>`. A disabled agent reserves nothing. `unit` says the amounts in a refusal ("7 USDC").

    `budget`: the amount is a budget for many payments to recipients not known yet (an x402 session): only the
    asset and the velocity limits apply now; the per-payment cap and recipient lists apply to each payment.
    """
    policy = _for_budget(await load_policy(conn, wallet_id), budget)
    if policy.velocity:
        # Velocity limits sum what is reserved, so check + insert are serialised per wallet by its row lock
        # (NO KEY UPDATE: inserts that merely reference the wallet are not blocked). Without velocity limits
        # every wallet rule is static: concurrent reservations cannot overshoot anything, and none waits
        # (issue 11: under load this lock, held through the audit append and commit, queued every payment).
        await conn.execute(sa.select(wallets.c.id).where(wallets.c.id == wallet_id).with_for_update(key_share=True))
    agent = await load_agent_policy(conn, principal_id, lock=True) if principal_id is not None else None
    if agent is not None:
        agent = (_for_budget(agent[0], budget), agent[1])
    agent_id = principal_id if agent is not None else None
    existing = (
        await conn.execute(
            sa.select(reservations.c.status, reservations.c.amount_atomic).where(
                reservations.c.payment_id == payment_id
            )
        )
    ).first()
    if existing is not None:
        if existing.status != RESERVED or int(existing.amount_atomic) == amount_atomic:
            return ReserveResult(reserved=existing.status != RELEASED)
        # the operation was edited while pending: check the new amount against the limits from scratch
        await conn.execute(reservations.delete().where(reservations.c.payment_id == payment_id))
    if agent is not None and agent[1]:
        return ReserveResult(
            reserved=False, refusal=LimitRefusal(limit="agent:disabled", message="the agent is disabled")
        )
    refusal = await check_policies(
        conn, policy, wallet_id, agent, agent_id, to=to, asset=asset, amount_atomic=amount_atomic, unit=unit
    )
    if refusal is not None:
        return ReserveResult(reserved=False, refusal=refusal)
    await conn.execute(
        reservations.insert().values(
            payment_id=payment_id,
            wallet_id=wallet_id,
            asset=asset,
            amount_atomic=amount_atomic,
            status=RESERVED,
            agent_id=agent_id,
        )
    )
    return ReserveResult(reserved=True)


def _for_budget(policy: SpendingPolicy, budget: bool) -> SpendingPolicy:
    return (
        policy.model_copy(update={"allowlist": None, "denylist": [], "per_payment_cap_atomic": None})
        if budget
        else policy
    )


async def check_policies(
    conn: AsyncConnection,
    policy: SpendingPolicy,
    wallet_id: uuid.UUID,
    agent: tuple[SpendingPolicy, bool] | None,
    agent_id: uuid.UUID | None,
    *,
    to: str,
    asset: str,
    amount_atomic: int,
    unit: Unit = ATOMIC,
) -> LimitRefusal | None:
    """The wallet's policy, then the agent's (`agent:<limit>`): what `reserve` checks, and what a dry run
    (MCP preview_payment) reads without reserving. Reads only."""
    refusal = await _check(
        conn, policy, reservations.c.wallet_id == wallet_id, to=to, asset=asset, amount_atomic=amount_atomic, unit=unit
    )
    if refusal is None and agent is not None and agent_id is not None:
        refusal = await _check(
            conn,
            agent[0],
            reservations.c.agent_id == agent_id,
            to=to,
            asset=asset,
            amount_atomic=amount_atomic,
            unit=unit,
        )
        if refusal is not None:
            refusal = refusal.model_copy(
                update={"limit": f"agent:{refusal.limit}", "message": f"agent limit: {refusal.message}"}
            )
    return refusal


async def _check(
    conn: AsyncConnection, policy: SpendingPolicy, scope, *, to: str, asset: str, amount_atomic: int, unit: Unit
) -> LimitRefusal | None:
    """One policy's rules for a payment in `asset` (only the limits for that asset: `for_asset`); velocity counts
    what `scope` (a wallet, or an agent across wallets) holds or spent in that asset."""
    policy = for_asset(policy, asset)
    refusal = check_static(policy, to=to, asset=asset, amount_atomic=amount_atomic, unit=unit)
    if refusal is not None or not policy.velocity:
        return refusal
    used: dict[str, int] = {}
    for limit in policy.velocity:
        used[limit.name] = int(
            (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(reservations.c.amount_atomic), 0)).where(
                        scope,
                        reservations.c.asset == asset,
                        reservations.c.status.in_([RESERVED, COMMITTED]),
                        reservations.c.created_at
                        > sa.func.now() - sa.text(f"interval '{int(limit.window_seconds)} seconds'"),
                    )
                )
            ).scalar_one()  # an aggregate: always one row
        )
    return check_velocity(policy, used, amount_atomic, unit)


async def settle_reservation(conn: AsyncConnection, payment_id: uuid.UUID, status: str) -> None:
    """Commit (confirmed) or release (anything else); a settled reservation never changes again."""
    await conn.execute(
        reservations.update()
        .where(reservations.c.payment_id == payment_id, reservations.c.status == RESERVED)
        .values(status=status, settled_at=sa.func.now())
    )


async def usage(
    conn: AsyncConnection,
    policy: SpendingPolicy,
    *,
    asset: str,
    wallet_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
) -> list[dict]:
    """Where a policy's velocity limits for `asset` stand now (`for_asset`), for a wallet or (agent_id) an agent
    across its wallets: per limit `used` (committed) and `reserved` (in flight) in the window, and `remaining`,
    in atomic units. The same sums `reserve` checks, so what this shows is what the next payment in `asset` meets."""
    scope = reservations.c.wallet_id == wallet_id if agent_id is None else reservations.c.agent_id == agent_id
    out = []
    for limit in for_asset(policy, asset).velocity:
        rows = dict(
            (
                await conn.execute(
                    sa.select(reservations.c.status, sa.func.sum(reservations.c.amount_atomic))
                    .where(
                        scope,
                        reservations.c.asset == asset,
                        reservations.c.status.in_([RESERVED, COMMITTED]),
                        reservations.c.created_at
                        > sa.func.now() - sa.text(f"interval '{int(limit.window_seconds)} seconds'"),
                    )
                    .group_by(reservations.c.status)
                )
            ).all()
        )
        used, reserved = int(rows.get(COMMITTED) or 0), int(rows.get(RESERVED) or 0)
        out.append(
            {
                "limit": f"velocity:{limit.name}",
                "window_seconds": limit.window_seconds,
                "max_atomic": limit.max_atomic,
                "used_atomic": used,
                "reserved_atomic": reserved,
                "remaining_atomic": max(0, limit.max_atomic - used - reserved),
            }
        )
    return out
