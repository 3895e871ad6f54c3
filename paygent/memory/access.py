"""Who may read and write which memory scope.

- A private scope (`private/...`, or no scope at all) belongs to the caller: always readable and writable by
  them, by nobody else (its rows carry the caller's id, so another principal's query never reaches them).
- A shared scope belongs to the tenant: admins may read and write every one, auditors read every one; anyone
  else (people and agents) needs a grant on the scope or on a scope above it (`fleet` covers `fleet/pricing`).
  Grants are read on every call, so revoking one shuts the principal out on its next call.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.accounts import Principal
from paygent.db.memory_schema import SHARED_OWNER, memory_grants
from paygent.memory.scope import Scope, parse_scope
from paygent.memory.store import Place


class Access(StrEnum):
    read = "read"
    write = "write"
    none = "none"


class MemoryForbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def private_place(tenant_id: uuid.UUID, principal_id: uuid.UUID, scope: Scope) -> Place:
    return Place(tenant_id=tenant_id, owner_id=principal_id, scope=scope.path, written=scope.written)


async def granted(conn: AsyncConnection, who: Principal, path: str) -> Access:
    """The strongest grant the caller holds on `path` or a scope above it."""
    g = memory_grants.c
    rows = (
        await conn.scalars(
            sa.select(g.access).where(
                g.tenant_id == who.tenant_id,
                g.principal_id == who.user_id,
                sa.or_(g.scope == path, sa.func.starts_with(path, g.scope + "/")),
            )
        )
    ).all()
    return Access.write if "write" in rows else Access.read if "read" in rows else Access.none


async def resolve(conn: AsyncConnection, who: Principal, scope_text: str | list[str] | None, need: Access) -> Place:
    """The place a caller names, if they may `need` it there; else MemoryForbidden naming the scope."""
    scope = parse_scope(scope_text)
    if scope.private:
        return private_place(who.tenant_id, who.user_id, scope)
    if not who.is_agent and who.has_role("admin"):
        have = Access.write
    elif not who.is_agent and who.has_role("auditor"):
        have = Access.read
    else:
        have = await granted(conn, who, scope.path)
    if have == Access.none or (need == Access.write and have != Access.write):
        raise MemoryForbidden(f"scope: {who.actor} may not {need.value} the shared scope {scope.path}")
    return Place(tenant_id=who.tenant_id, owner_id=SHARED_OWNER, scope=scope.path, written=scope.written)


async def set_grant(conn: AsyncConnection, who: Principal, scope_text: str, principal_id: uuid.UUID, access: Access):
    scope = parse_scope(scope_text)
    if scope.private:
        raise ValueError("private scopes take no grants")
    g = memory_grants.c
    if access == Access.none:
        await conn.execute(
            memory_grants.delete().where(
                g.tenant_id == who.tenant_id, g.scope == scope.path, g.principal_id == principal_id
            )
        )
        return scope
    insert = pg_insert(memory_grants).values(
        tenant_id=who.tenant_id, scope=scope.path, principal_id=principal_id, access=access.value, granted_by=who.actor
    )
    await conn.execute(
        insert.on_conflict_do_update(
            index_elements=["tenant_id", "scope", "principal_id"],
            set_={"access": access.value, "granted_by": who.actor, "granted_at": sa.func.now()},
        )
    )
    return scope
