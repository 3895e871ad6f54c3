"""One async engine per process and database URL."""

from __future__ import annotations

import time

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from paygent.db.tenancy import scope_engine

_engines: dict[str, AsyncEngine] = {}
# A connection back from the pool is pinged (one round trip) only when it sat idle this long: under load a
# connection is reused within milliseconds, and pinging it every time (`pool_pre_ping`) cost a round trip per
# transaction, in the API and in every database activity (issue 18). A server restart is still noticed on the
# first use after a pause; a connection that dies while in use is invalidated by SQLAlchemy as before.
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "paygent_idle_since"


def ping_when_idle(engine: AsyncEngine, after_seconds: float = PING_AFTER_IDLE_SECONDS) -> AsyncEngine:
    """Ping a pooled connection on checkout only when it has been idle `after_seconds` or longer; a failed ping
    makes the pool drop it and hand out a fresh one (SQLAlchemy's DisconnectionError contract)."""
    pool, dialect = engine.sync_engine.pool, engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checkin(dbapi_connection, record) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checkout(dbapi_connection, record, proxy) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < after_seconds:
            return  # a fresh connection, or one in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as err:
            raise exc.DisconnectionError(f"pooled connection failed its ping: {err}") from err

    return engine


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
        pooled = create_async_engine(url, pool_size=settings.db_pool_size, max_overflow=settings.db_pool_overflow)
        engine = scope_engine(ping_when_idle(pooled))
        _engines[url] = engine
    return engine


async def dispose_all() -> None:
    for engine in list(_engines.values()):
        await engine.dispose()
    _engines.clear()
