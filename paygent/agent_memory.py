"""The agent's own key-value memory (tools `memory_set/get/search`, MCP `remember`/`recall`): the principal's
private scope `[namespace]` of the memory store (paygent.memory.store), with text values.

One user's agent can never read another's notes: the rows carry the principal's id. Expiry, caching and the
behaviour without Redis are the store's (its docstring says how).
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from paygent.memory.access import private_place
from paygent.memory.embedding import LOCAL_MODEL, Embedder
from paygent.memory.scope import compile_pattern, parse_scope
from paygent.memory.store import MAX_TTL_SECONDS, MemoryStore, Place, Unavailable

SEARCH_LIMIT = 50
_KEY = r"^[\w.\-:/]{1,200}$"
_NAMESPACE = r"^[\w.\-]{1,64}$"


class ToolUnavailable(Exception):
    """Infrastructure trouble the tool cannot hide; raised so Temporal retries the activity."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace: str = Field("default", pattern=_NAMESPACE)


class SetArgs(_Args):
    key: str = Field(pattern=_KEY)
    value: str = Field(max_length=4000)
    ttl_seconds: int | None = Field(None, ge=1, le=MAX_TTL_SECONDS)


class GetArgs(_Args):
    key: str = Field(pattern=_KEY)


class SearchArgs(_Args):
    prefix: str = Field("", max_length=200, pattern=r"^[\w.\-:/]{0,200}$")


class Memory:
    def __init__(
        self, engine: AsyncEngine, redis: Redis, tenant_id: str, user_id: str, embedder: Embedder | None = None
    ) -> None:
        self.store = MemoryStore(engine, redis, embedder or Embedder(LOCAL_MODEL))
        self.tenant_id, self.user_id = uuid.UUID(tenant_id), uuid.UUID(user_id)

    def _place(self, namespace: str) -> Place:
        return private_place(self.tenant_id, self.user_id, parse_scope(["private", namespace]))

    async def set(self, args: SetArgs) -> dict[str, Any]:
        try:
            item = await self.store.put(self._place(args.namespace), args.key, args.value, ttl_seconds=args.ttl_seconds)
        except Unavailable as exc:
            raise ToolUnavailable(str(exc)) from None
        return {"key": args.key, "namespace": args.namespace, "stored": True, "expires_at": item["expires_at"]}

    async def get(self, args: GetArgs) -> dict[str, Any]:
        item = await self.store.get(self._place(args.namespace), args.key)
        if item is None:
            return {"key": args.key, "namespace": args.namespace, "value": None}
        return {"key": args.key, "namespace": args.namespace, "value": item["value"], "cached": item["cached"]}

    async def search(self, args: SearchArgs) -> dict[str, Any]:
        pattern = compile_pattern(args.prefix + "**") if args.prefix else None
        page = await self.store.search(self._place(args.namespace), pattern=pattern, limit=SEARCH_LIMIT)
        items = [
            {
                "key": r["key"],
                "value": _short(r["value"]),
                "expires_at": r["expires_at"],
            }
            for r in page["items"]
        ]
        return {"namespace": args.namespace, "prefix": args.prefix, "count": len(items), "items": items}


def _short(value: Any) -> Any:
    return value[:197] + "..." if isinstance(value, str) and len(value) > 200 else value
