"""One async engine per process and database URL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from paygent.db.tenancy import scope_engine

_engines: dict[str, AsyncEngine] = {}


def async_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def get_engine(url: str | None = None) -> AsyncEngine:
    from paygent.settings import get_settings

    settings = get_settings()
    url = async_url(url or settings.database_url)
    engine = _engines.get(url)
    if engine is None:
        # every transaction carries the current tenant for row-level security (paygent/db/tenancy.py)
        # Sized from the load figures (issue 11): with 10 kept, a burst opened and closed overflow connections
        # all the time (seen in the worker's profile). Local activities must not be capped below what waits for
        # a connection: a queued local activity holds its workflow task open until the server times it out.
        # PAYGENT_DB_POOL_SIZE / PAYGENT_DB_POOL_OVERFLOW (20 + 10): several processes share max_connections.
        engine = scope_engine(
            create_async_engine(
                url, pool_size=settings.db_pool_size, max_overflow=settings.db_pool_overflow, pool_pre_ping=True
            )
        )
        _engines[url] = engine
    return engine


async def dispose_all() -> None:
    for engine in list(_engines.values()):
        await engine.dispose()
    _engines.clear()
