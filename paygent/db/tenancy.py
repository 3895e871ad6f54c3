"""One way to scope database work to a tenant: row-level security reads `paygent.tenant_id` from the transaction.

The tenant is known where a request is authenticated (the API's `principal` dependency) or where work for it
runs (an activity: `workers/tenant_context.py` carries it from the workflow in a header). It is kept in a
context variable, and `scope_engine` installs a `begin` hook that copies it into every transaction the engine
opens (`SET LOCAL` semantics: `set_config(..., true)`), so no query can forget it. Code that must choose the
tenant itself (a scheduler working through tenants) opens `tenant_transaction(engine, tenant_id)`.

Without a tenant the setting is empty and the policies (migration 0005) show no rows at all.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

TENANT_SETTING = "paygent.tenant_id"
_current: ContextVar[str | None] = ContextVar("paygent_tenant", default=None)


def _text(tenant_id: uuid.UUID | str) -> str:
    return str(uuid.UUID(str(tenant_id)))  # refuses anything that is not a UUID


def current_tenant() -> str | None:
    return _current.get()


def use_tenant(tenant_id: uuid.UUID | str | None) -> None:
    """Scope the rest of this task (and tasks it starts) to a tenant; an API request does this once."""
    _current.set(None if tenant_id is None else _text(tenant_id))


@contextlib.contextmanager
def tenant_scope(tenant_id: uuid.UUID | str | None) -> Iterator[None]:
    token = _current.set(None if tenant_id is None else _text(tenant_id))
    try:
        yield
    finally:
        _current.reset(token)


async def set_tenant(conn: AsyncConnection, tenant_id: uuid.UUID | str) -> None:
    """Scope the open transaction to one tenant (gone at commit or rollback)."""
    await conn.execute(sa.select(sa.func.set_config(TENANT_SETTING, _text(tenant_id), True)))


@contextlib.asynccontextmanager
async def tenant_transaction(engine: AsyncEngine, tenant_id: uuid.UUID | str) -> AsyncIterator[AsyncConnection]:
    with tenant_scope(tenant_id):
        async with engine.begin() as conn:
            if not is_scoped(engine):  # a scoped engine's begin hook has set it already: no second round trip
                await set_tenant(conn, tenant_id)
            yield conn


def _on_begin(conn: sa.Connection) -> None:
    tenant = _current.get()
    if tenant is not None:
        conn.execute(sa.select(sa.func.set_config(TENANT_SETTING, tenant, True)))


def is_scoped(engine: AsyncEngine) -> bool:
    return event.contains(engine.sync_engine, "begin", _on_begin)


def scope_engine(engine: AsyncEngine) -> AsyncEngine:
    """Make every transaction of `engine` carry the current tenant (idempotent)."""
    if not event.contains(engine.sync_engine, "begin", _on_begin):
        event.listen(engine.sync_engine, "begin", _on_begin)
    return engine
