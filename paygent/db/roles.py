"""The database role the API and the worker connect as: not a superuser, not the owner of any table.

Migrations run as the owner (`PAYGENT_MIGRATE_DATABASE_URL`); the application connects as this role
(`DATABASE_URL`), so row-level security (migration 0005) holds for it and it cannot disable triggers, alter
tables, or change or delete audit rows. `grant_app_role` is idempotent and runs after every migration, so new
tables are granted too.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

APP_ROLE = "paygent_app"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def app_url(owner_url: str, role: str = APP_ROLE, password: str | None = None) -> str:
    """The owner's URL with the application role's credentials instead."""
    parts = urlsplit(owner_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = quote(role) + (f":{quote(password)}" if password else "") + "@" + host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def grant_app_role(owner_url: str, role: str = APP_ROLE, password: str | None = None) -> str:
    """Create the role if needed and grant it exactly what the application needs; returns its URL."""
    if not _NAME.match(role):
        raise ValueError(f"role name {role!r}: lower-case letters, digits and _ only")
    conn = await asyncpg.connect(_plain(owner_url))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        if not exists:
            try:
                await conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS")
            except asyncpg.DuplicateObjectError:
                pass  # created by a concurrent run (roles are cluster-wide)
        if password:
            await conn.execute(f"ALTER ROLE {role} PASSWORD {_literal(password)}")
        db = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{db}" TO {role}')
        await conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        await conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        await conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
        await conn.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}")
        # the audit log is append-only for the application, whatever happens to its trigger
        await conn.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {role}")
        await conn.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {role}")
    finally:
        await conn.close()
    return app_url(owner_url, role, password)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
