"""Wallet grants: who may spend from which wallet. Spending needs the requester role AND a `spend` grant."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.schema import users, wallet_grants

SPEND = "spend"


async def has_grant(conn: AsyncConnection, user_id: uuid.UUID, wallet_id: uuid.UUID, permission: str = SPEND) -> bool:
    return (
        await conn.scalar(
            sa.select(sa.literal(True)).where(
                wallet_grants.c.user_id == user_id,
                wallet_grants.c.wallet_id == wallet_id,
                wallet_grants.c.permission == permission,
            )
        )
        is not None
    )


async def grants_of(conn: AsyncConnection, user_id: uuid.UUID) -> dict[uuid.UUID, list[str]]:
    """wallet id -> the permissions `user_id` holds on it."""
    rows = await conn.execute(
        sa.select(wallet_grants.c.wallet_id, wallet_grants.c.permission).where(wallet_grants.c.user_id == user_id)
    )
    out: dict[uuid.UUID, list[str]] = {}
    for row in rows:
        out.setdefault(row.wallet_id, []).append(row.permission)
    return out


async def grants_of_on(conn: AsyncConnection, user_id: uuid.UUID, wallet_id: uuid.UUID) -> list[str]:
    return list(
        await conn.scalars(
            sa.select(wallet_grants.c.permission).where(
                wallet_grants.c.user_id == user_id, wallet_grants.c.wallet_id == wallet_id
            )
        )
    )


async def wallet_grants_view(conn: AsyncConnection, wallet_id: uuid.UUID) -> list[dict]:
    rows = await conn.execute(
        sa.select(
            wallet_grants.c.user_id,
            users.c.name,
            users.c.kind,
            wallet_grants.c.permission,
            wallet_grants.c.granted_by,
            wallet_grants.c.created_at,
        )
        .join(users, users.c.id == wallet_grants.c.user_id)
        .where(wallet_grants.c.wallet_id == wallet_id)
        .order_by(users.c.name, wallet_grants.c.permission)
    )
    return [
        {
            "principal_id": str(r.user_id),
            "name": r.name,
            "kind": r.kind,
            "permission": r.permission,
            "granted_by": r.granted_by,
            "created_at": r.created_at.isoformat(),
        }
        for r in rows
    ]


async def replace_wallet_grants(
    conn: AsyncConnection,
    *,
    tenant_id: uuid.UUID,
    wallet_id: uuid.UUID,
    grants: list[tuple[uuid.UUID, str]],
    granted_by: str,
) -> dict[str, list]:
    """Make the wallet's grants exactly `grants`; returns what was added and removed (for the audit row)."""
    current = {
        (r.user_id, r.permission)
        for r in await conn.execute(
            sa.select(wallet_grants.c.user_id, wallet_grants.c.permission).where(wallet_grants.c.wallet_id == wallet_id)
        )
    }
    wanted = set(grants)
    added, removed = wanted - current, current - wanted
    if removed:
        await conn.execute(
            wallet_grants.delete().where(
                wallet_grants.c.wallet_id == wallet_id,
                sa.tuple_(wallet_grants.c.user_id, wallet_grants.c.permission).in_(list(removed)),
            )
        )
    if added:
        await conn.execute(
            wallet_grants.insert().values(
                [
                    {
                        "wallet_id": wallet_id,
                        "user_id": u,
                        "permission": p,
                        "tenant_id": tenant_id,
                        "granted_by": granted_by,
                    }
                    for u, p in sorted(added, key=str)
                ]
            )
        )
    return {
        "added": [{"principal_id": str(u), "permission": p} for u, p in sorted(added, key=str)],
        "removed": [{"principal_id": str(u), "permission": p} for u, p in sorted(removed, key=str)],
    }


async def grant(
    conn: AsyncConnection,
    *,
    tenant_id: uuid.UUID,
    wallet_id: uuid.UUID,
    user_id: uuid.UUID,
    granted_by: str,
    permission: str = SPEND,
) -> None:
    """Add one grant (idempotent)."""
    from sqlalchemy.dialects.postgresql import insert

    await conn.execute(
        insert(wallet_grants)
        .values(
            wallet_id=wallet_id,
            user_id=user_id,
            permission=permission,
            tenant_id=tenant_id,
            granted_by=granted_by,
        )
        .on_conflict_do_nothing()
    )
