"""The agent's key-value memory: Postgres holds it, Redis caches reads.

Memory is namespaced per (tenant, user, namespace), so one user's agent can never read another's notes. A
value may carry a TTL: an expired row is invisible at once (every read filters on `expires_at`) and pruned on
the next write. Redis holds read-through copies only: a write deletes the copy, a read fills it (SET NX) for
at most 60 s and not (by more than a second) past the value's expiry, so a read racing a write is stale for
60 s at worst. Redis being down slows reads down; it never loses or invents a value.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from paygent.db.agent_schema import agent_memory

CACHE_SECONDS = 60
MAX_TTL_SECONDS = 366 * 86400
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
    prefix: str = Field("", max_length=200)


class Memory:
    def __init__(self, engine: AsyncEngine, redis: Redis, tenant_id: str, user_id: str) -> None:
        self.engine, self.redis = engine, redis
        self.tenant_id, self.user_id = uuid.UUID(tenant_id), uuid.UUID(user_id)

    def _owner(self, namespace: str):
        c = agent_memory.c
        return sa.and_(c.tenant_id == self.tenant_id, c.user_id == self.user_id, c.namespace == namespace)

    @staticmethod
    def _live():
        return sa.or_(agent_memory.c.expires_at.is_(None), agent_memory.c.expires_at > sa.func.now())

    def _cache_key(self, namespace: str, key: str) -> str:
        return f"paygent:mem:{self.tenant_id}:{self.user_id}:{namespace}:{key}"

    async def _cache_get(self, key: str) -> bytes | str | None:
        """The cached JSON: bytes from our clients (no `decode_responses`), str from a decoding one."""
        try:
            return await self.redis.get(key)
        except (RedisError, OSError):  # the cache is optional: Postgres answers
            return None

    async def _invalidate(self, key: str) -> None:
        """After a write the cached copy must go; if Redis cannot drop it, the write is reported as failed."""
        try:
            await self.redis.delete(key)
        except (RedisError, OSError):
            raise ToolUnavailable("the memory cache could not be invalidated; try again") from None

    async def set(self, args: SetArgs) -> dict[str, Any]:
        expires = (datetime.now(UTC) + timedelta(seconds=args.ttl_seconds)) if args.ttl_seconds else None
        values = {
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
            "namespace": args.namespace,
            "key": args.key,
            "value": args.value,
            "expires_at": expires,
        }
        async with self.engine.begin() as conn:
            await conn.execute(
                agent_memory.delete().where(self._owner(args.namespace), agent_memory.c.expires_at <= sa.func.now())
            )
            await conn.execute(
                pg_insert(agent_memory)
                .values(values)
                .on_conflict_do_update(
                    index_elements=["tenant_id", "user_id", "namespace", "key"],
                    set_={"value": args.value, "expires_at": expires, "updated_at": sa.func.now()},
                )
            )
        await self._invalidate(self._cache_key(args.namespace, args.key))
        return {
            "key": args.key,
            "namespace": args.namespace,
            "stored": True,
            "expires_at": expires.isoformat() if expires else None,
        }

    async def get(self, args: GetArgs) -> dict[str, Any]:
        cache_key = self._cache_key(args.namespace, args.key)
        cached = await self._cache_get(cache_key)
        if cached is not None:
            return {"key": args.key, "namespace": args.namespace, "value": json.loads(cached)["value"], "cached": True}
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(agent_memory.c.value, agent_memory.c.expires_at).where(
                        self._owner(args.namespace), agent_memory.c.key == args.key, self._live()
                    )
                )
            ).first()
        if row is None:
            return {"key": args.key, "namespace": args.namespace, "value": None}
        ttl = CACHE_SECONDS
        if row.expires_at is not None:
            ttl = max(1, min(ttl, int((row.expires_at - datetime.now(UTC)).total_seconds())))
        try:
            # NX: never overwrite a copy; writes delete it, so a racing read leaves one at most 60 s stale
            await self.redis.set(cache_key, json.dumps({"value": row.value}), ex=ttl, nx=True)
        except (RedisError, OSError):
            pass  # read-through only: the answer stands without the cache
        return {"key": args.key, "namespace": args.namespace, "value": row.value, "cached": False}

    async def search(self, args: SearchArgs) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(agent_memory.c.key, agent_memory.c.value, agent_memory.c.expires_at)
                    .where(
                        self._owner(args.namespace),
                        self._live(),
                        agent_memory.c.key.startswith(args.prefix, autoescape=True),
                    )
                    .order_by(agent_memory.c.key)
                    .limit(SEARCH_LIMIT)
                )
            ).all()
        items = [
            {
                "key": r.key,
                "value": r.value if len(r.value) <= 200 else r.value[:197] + "...",
                "expires_at": r.expires_at.isoformat() if r.expires_at else None,
            }
            for r in rows
        ]
        return {"namespace": args.namespace, "prefix": args.prefix, "count": len(items), "items": items}
