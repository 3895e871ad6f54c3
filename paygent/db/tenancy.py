"""One way to open a tenant's transaction: row-level security reads `paygent.tenant_id` from it.

Every transaction that touches tenant-scoped tables, in the API and in activities, goes through
`tenant_transaction` (or `set_tenant` on a transaction already open), so Postgres itself limits what a
query that forgets its `WHERE tenant_id = ...` can see.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

TENANT_SETTING = "paygent.tenant_id"


async def set_tenant(conn: AsyncConnection, tenant_id: uuid.UUID | str) -> None:
    """Scope the open transaction to one tenant (SET LOCAL: gone at commit or rollback)."""
    await conn.execute(sa.select(sa.func.set_config(TENANT_SETTING, str(uuid.UUID(str(tenant_id))), True)))


@contextlib.asynccontextmanager
async def tenant_transaction(engine: AsyncEngine, tenant_id: uuid.UUID | str) -> AsyncIterator[AsyncConnection]:
    async with engine.begin() as conn:
        await set_tenant(conn, tenant_id)
        yield conn
