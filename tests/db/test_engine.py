"""The pool pings a connection only after it sat idle (paygent/db/engine.py): a connection the server dropped
while it was idle is replaced before anyone uses it; one reused at once goes out without a ping."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from paygent.db.engine import ping_when_idle


async def test_a_connection_dropped_while_idle_is_replaced_before_use(database_url, db_engine):
    engine = ping_when_idle(create_async_engine(database_url, pool_size=1, max_overflow=0), after_seconds=0.2)
    try:
        async with engine.connect() as conn:
            first = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
        async with db_engine.connect() as admin:  # the server ends it, as a restart or an idle timeout would
            await admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        await asyncio.sleep(0.3)
        async with engine.connect() as conn:  # no error reaches the caller: the ping failed, a new one came
            second = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
        assert second != first
        async with engine.connect() as conn:  # reused at once: the same connection
            assert await conn.scalar(sa.text("SELECT pg_backend_pid()")) == second
    finally:
        await engine.dispose()


async def test_without_the_idle_ping_a_dropped_connection_fails_its_first_use(database_url, db_engine):
    """What the ping is for: the same drop, reused within the idle window, surfaces as an error once (and the
    pool then discards the connection)."""
    engine = ping_when_idle(create_async_engine(database_url, pool_size=1, max_overflow=0), after_seconds=60)
    try:
        async with engine.connect() as conn:
            first = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
        async with db_engine.connect() as admin:
            await admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        await asyncio.sleep(0.1)
        failed = False
        try:
            async with engine.connect() as conn:
                await conn.scalar(sa.text("SELECT 1"))
        except sa.exc.DBAPIError:
            failed = True
        assert failed
        async with engine.connect() as conn:  # invalidated: the next checkout opens a fresh connection
            assert await conn.scalar(sa.text("SELECT pg_backend_pid()")) != first
    finally:
        await engine.dispose()
