"""Agents as principals: a `users` row of kind "agent" (its own API key, owned by an admin), its spending policy
in `agents`, and its wallets as `spend` grants. The key is returned once and stored as a hash."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.crypto import hash_api_key, new_api_key
from paygent.db import grants
from paygent.db.accounts import AGENT
from paygent.db.schema import agents, users, wallet_grants
from paygent.domain.spending import SpendingPolicy


async def create_agent(
    conn: AsyncConnection,
    *,
    tenant_id: uuid.UUID,
    name: str,
    owner_id: uuid.UUID,
    owner_name: str,
    wallet_ids: list[uuid.UUID],
    policy: SpendingPolicy,
) -> tuple[uuid.UUID, str]:
    """Returns (agent id, API key)."""
    agent_id, api_key = uuid.uuid4(), new_api_key()
    await conn.execute(
        users.insert().values(
            id=agent_id,
            tenant_id=tenant_id,
            name=name,
            kind=AGENT,
            owner_id=owner_id,
            api_key_hash=hash_api_key(api_key),
            roles=["requester"],
        )
    )
    await conn.execute(
        agents.insert().values(id=agent_id, tenant_id=tenant_id, spending_policy=policy.model_dump(mode="json"))
    )
    for wallet_id in wallet_ids:
        await grants.grant(conn, tenant_id=tenant_id, wallet_id=wallet_id, user_id=agent_id, granted_by=owner_name)
    return agent_id, api_key


def _select():
    owner = users.alias("owner")
    wallets_of = (
        sa.select(
            sa.func.coalesce(sa.func.array_agg(sa.cast(wallet_grants.c.wallet_id, sa.Text)), sa.text("'{}'::text[]"))
        )
        .where(wallet_grants.c.user_id == users.c.id, wallet_grants.c.permission == grants.SPEND)
        .scalar_subquery()
    )
    return (
        sa.select(
            users.c.id,
            users.c.name,
            users.c.disabled,
            users.c.created_at,
            owner.c.name.label("owner"),
            agents.c.spending_policy,
            agents.c.disabled_at,
            wallets_of.label("wallet_ids"),
        )
        .join(agents, agents.c.id == users.c.id)
        .join(owner, owner.c.id == users.c.owner_id)
    )


async def list_agents(conn: AsyncConnection, tenant_id: uuid.UUID) -> Sequence[RowMapping]:
    return (await conn.execute(_select().where(users.c.tenant_id == tenant_id).order_by(users.c.name))).mappings().all()


async def get_agent(conn: AsyncConnection, tenant_id: uuid.UUID, agent_id: uuid.UUID):
    return (
        (await conn.execute(_select().where(users.c.tenant_id == tenant_id, users.c.id == agent_id))).mappings().first()
    )


async def rotate_key(conn: AsyncConnection, agent_id: uuid.UUID) -> str:
    """A new key; the old one stops working with this transaction's commit."""
    api_key = new_api_key()
    await conn.execute(users.update().where(users.c.id == agent_id).values(api_key_hash=hash_api_key(api_key)))
    return api_key


async def disable(conn: AsyncConnection, agent_id: uuid.UUID) -> None:
    await conn.execute(users.update().where(users.c.id == agent_id).values(disabled=True))
    await conn.execute(
        agents.update().where(agents.c.id == agent_id, agents.c.disabled_at.is_(None)).values(disabled_at=sa.func.now())
    )


async def save_agent_policy(conn: AsyncConnection, agent_id: uuid.UUID, policy: SpendingPolicy) -> None:
    await conn.execute(
        agents.update().where(agents.c.id == agent_id).values(spending_policy=policy.model_dump(mode="json"))
    )


async def load_agent_policy(conn: AsyncConnection, agent_id: uuid.UUID, *, lock: bool = False):
    """(policy, disabled) of an agent, or None when `agent_id` is not an agent (a human's payment)."""
    query = sa.select(agents.c.spending_policy, agents.c.disabled_at).where(agents.c.id == agent_id)
    if lock:
        query = query.with_for_update(key_share=True)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return SpendingPolicy.model_validate(row.spending_policy or {}), row.disabled_at is not None
