"""What the memory doors share (HTTP routes, MCP tools): the store for a request, and the caller's place in a
scope, refused with 403 naming `scope` when the caller may not read or write it."""

from __future__ import annotations

from api.deps import Deps
from api.errors import ApiError
from paygent.db.accounts import Principal
from paygent.memory.access import Access, MemoryForbidden, resolve
from paygent.memory.embedding import embedder_from_settings
from paygent.memory.store import MemoryStore, Place, Unavailable


def store_for(d: Deps) -> MemoryStore:
    return MemoryStore(d.engine, d.redis, embedder_from_settings(d.settings))


async def place_for(d: Deps, who: Principal, scope: str | None, need: Access) -> Place:
    try:
        async with d.engine.connect() as conn:
            return await resolve(conn, who, scope, need)
    except MemoryForbidden as exc:
        raise ApiError(403, "forbidden", exc.message, "scope") from None


def unavailable(exc: Unavailable) -> ApiError:
    return ApiError(503, "unavailable", str(exc), headers={"Retry-After": "1"})
