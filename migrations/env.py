"""Alembic environment: async engine on asyncpg; URL from `config.attributes['url']` or paygent settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from paygent.db import (  # noqa: F401  (their tables join the shared metadata)
    agent_schema,
    reconcile_schema,
    reservations,
)
from paygent.db.engine import async_url
from paygent.db.schema import metadata

config = context.config


def _url() -> str:
    url = config.attributes.get("url")
    if url is None:
        from paygent.settings import get_settings

        url = get_settings().database_url
    return async_url(url)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_main())
