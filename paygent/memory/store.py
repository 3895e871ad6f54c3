"""The memory store: Postgres holds every item, Redis caches reads, counts use and fans changes out.

Rules that hold whatever Redis does:
- An expired item is invisible at once: every read filters on `expires_at` (cleanup only reclaims the space).
- A write deletes the cached copy before it answers. Copies are set with NX and live at most `CACHE_SECONDS`,
  never past the item's expiry, so a read racing a write leaves a copy that is stale for that long at worst.
- Items with `refresh_ttl_on_read` are never cached: each read moves their expiry in Postgres.
- Redis down: reads and writes go to Postgres. A write whose copy could not be deleted still succeeds; the
  process keeps the key and deletes it before it serves anything from the cache again (another API process
  could serve a copy cached before the outage for at most `CACHE_SECONDS` once Redis is back, and only if
  Redis kept its data through the outage). Stats then say the counts are unknown; no change event goes out.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paygent.db.memory_schema import memory_items, memory_texts
from paygent.domain.errors import InvalidInput
from paygent.memory import metrics
from paygent.memory.embedding import Embedder
from paygent.memory.scope import KeyPattern, check_key, check_partition

CACHE_SECONDS = 60
MAX_VALUE_BYTES = 8 * 1024  # under the API's 16 KiB body limit, so the cap answers with its own 422
MAX_TTL_SECONDS = 366 * 86400
MAX_TEXT_FOR_RECALL = 8000
PAGE_MAX = 200
STATS_WINDOW_MINUTES = 60


_PENDING: set[str] = set()  # cached copies this process could not delete (Redis down); deleted before reuse
_PENDING_MAX = 100_000


class Unavailable(Exception):
    """Infrastructure trouble a caller must hear about (the API answers 503; an activity retries)."""


class VersionConflict(Exception):
    def __init__(self, key: str, current: int | None) -> None:
        super().__init__(f"key {key}: version conflict (current version {current if current else 'none'})")
        self.key, self.current = key, current


@dataclass(frozen=True)
class Place:
    """A resolved scope: whose rows (a principal's, or the tenant's shared ones) and under which path."""

    tenant_id: uuid.UUID
    owner_id: uuid.UUID
    scope: str  # stored form, e.g. "notes" or "fleet/pricing"
    written: str  # as the caller writes it, e.g. "private/notes"

    def where(self, table: sa.Table = memory_items) -> sa.ColumnElement[bool]:
        c = table.c
        return sa.and_(c.tenant_id == self.tenant_id, c.owner_id == self.owner_id, c.scope == self.scope)

    def tag(self) -> str:
        return f"{self.tenant_id}:{self.owner_id}:{self.scope}"


def _live() -> sa.ColumnElement[bool]:
    return sa.or_(memory_items.c.expires_at.is_(None), memory_items.c.expires_at > sa.func.now())


def encode_value(value: Any, field: str = "value") -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, f"must be a JSON value ({exc})") from None
    if "\\u0000" in json.dumps(value):
        raise InvalidInput(field, "holds a NUL character, which cannot be stored")
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise InvalidInput(field, "holds an unpaired surrogate, which is not text") from None
    if size > MAX_VALUE_BYTES:
        raise InvalidInput(field, f"is larger than {MAX_VALUE_BYTES} bytes as JSON")
    return text


def check_ttl(ttl_seconds: int | None, field: str = "ttl_seconds") -> int | None:
    if ttl_seconds is not None and not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidInput(field, f"must be between 1 and {MAX_TTL_SECONDS} seconds")
    return ttl_seconds


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None


def encode_cursor(updated_at: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([updated_at.isoformat(), key]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(stamp), str(key)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise InvalidInput("cursor", "is not a cursor this API gave out") from None


class MemoryStore:
    def __init__(self, engine: AsyncEngine, redis: Redis | None, embedder: Embedder) -> None:
        self.engine, self.redis, self.embedder = engine, redis, embedder

    # ---- Redis helpers: optional except for invalidation ----
    def _cache_key(self, place: Place, key: str) -> str:
        return f"paygent:mem2:{place.tag()}:{key}"

    async def _invalidate(self, *cache_keys: str) -> None:
        if not cache_keys or self.redis is None:
            return
        try:
            for i in range(0, len(cache_keys), 1000):
                await self.redis.delete(*cache_keys[i : i + 1000])
        except (RedisError, OSError):
            if len(_PENDING) + len(cache_keys) > _PENDING_MAX:
                raise Unavailable("the memory cache is unreachable and too many copies wait to be dropped") from None
            _PENDING.update(cache_keys)

    async def _cache_usable(self) -> bool:
        """Redis answers and no copy this process failed to delete is left in it."""
        if self.redis is None:
            return False
        try:
            if _PENDING:
                waiting = list(_PENDING)
                for i in range(0, len(waiting), 1000):
                    await self.redis.delete(*waiting[i : i + 1000])
                _PENDING.difference_update(waiting)
            return True
        except (RedisError, OSError):
            return False

    async def _count(self, place: Place, field: str) -> None:
        if self.redis is None:
            return
        bucket = f"paygent:memstat:{place.tag()}:{int(time.time() // 60)}"
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(bucket, field, 1)
                pipe.expire(bucket, (STATS_WINDOW_MINUTES + 5) * 60)
                await pipe.execute()
        except (RedisError, OSError):
            pass  # counts are best effort; stats then say what they saw

    async def _publish(self, place: Place, key: str | None, op: str, version: int | None = None, **extra) -> None:
        if self.redis is None:
            return
        event = {"scope": place.written, "owner": str(place.owner_id), "key": key, "op": op, "version": version}
        try:
            await self.redis.publish(f"paygent:memory:{place.tenant_id}", json.dumps({**event, **extra}))
        except (RedisError, OSError):
            pass

    # ---- items ----
    async def put(
        self,
        place: Place,
        key: str,
        value: Any,
        *,
        ttl_seconds: int | None = None,
        partition: str = "",
        if_version: int | None = None,
        refresh_ttl_on_read: bool = False,
        actor: str = "",
    ) -> dict[str, Any]:
        check_key(key)
        check_partition(partition)
        check_ttl(ttl_seconds)
        if if_version is not None and if_version < 0:
            raise InvalidInput("if_version", "must be 0 (the key must not exist) or a version")
        if refresh_ttl_on_read and ttl_seconds is None:
            raise InvalidInput("refresh_ttl_on_read", "needs ttl_seconds")
        text = encode_value(value)
        expires = sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, ttl_seconds) if ttl_seconds else None
        c = memory_items.c
        fields = {
            "value": value,
            "partition": partition,
            "size_bytes": len(text.encode()),
            "ttl_seconds": ttl_seconds,
            "refresh_ttl_on_read": refresh_ttl_on_read,
            "expires_at": expires,
            "written_by": actor,
            "updated_at": sa.func.now(),
        }
        embedding = await self._embedding_for(value)
        async with self.engine.begin() as conn:
            stmt: Any
            if if_version is None or if_version == 0:
                insert = pg_insert(memory_items).values(
                    tenant_id=place.tenant_id, owner_id=place.owner_id, scope=place.scope, key=key, version=1, **fields
                )
                expired = sa.and_(c.expires_at.is_not(None), c.expires_at <= sa.func.now())
                # versions only grow, also past an expiry, so a stale if_version can never match again
                update = {**{k: insert.excluded[k] for k in fields}, "version": c.version + 1}
                stmt = insert.on_conflict_do_update(
                    index_elements=["tenant_id", "owner_id", "scope", "key"],
                    set_=update,
                    where=expired if if_version == 0 else None,
                ).returning(c.version, c.expires_at)
            else:
                stmt = (
                    memory_items.update()
                    .where(place.where(), c.key == key, c.version == if_version, _live())
                    .values(version=c.version + 1, **fields)
                    .returning(c.version, c.expires_at)
                )
            row = (await conn.execute(stmt)).first()
            if row is None:
                current = await conn.scalar(sa.select(c.version).where(place.where(), c.key == key, _live()))
                metrics.count("write", "conflict")
                raise VersionConflict(key, current)
            await self._store_item_text(conn, place, key, value, embedding)
        await self._invalidate(self._cache_key(place, key))
        metrics.count("write", "ok")
        await self._count(place, "w")
        await self._publish(place, key, "put", row.version)
        return {"scope": place.written, "key": key, "version": row.version, "expires_at": _iso(row.expires_at)}

    async def get(self, place: Place, key: str) -> dict[str, Any] | None:
        check_key(key)
        cache_key = self._cache_key(place, key)
        cached = None
        usable = await self._cache_usable()
        if usable and self.redis is not None:
            try:
                cached = await self.redis.get(cache_key)
            except (RedisError, OSError):
                usable = False
        if cached is not None:
            item = json.loads(cached)
            if item["expires_at"] is None or datetime.fromisoformat(item["expires_at"]) > datetime.now(UTC):
                metrics.count("read", "hit")
                await self._count(place, "h")
                await self._count(place, "r")
                return {**item, "cached": True}
        c = memory_items.c
        columns = (c.key, c.value, c.version, c.partition, c.expires_at, c.updated_at, c.refresh_ttl_on_read)
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    memory_items.update()
                    .where(place.where(), c.key == key, _live(), c.refresh_ttl_on_read)
                    .values(expires_at=sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, c.ttl_seconds))
                    .returning(*columns)
                )
            ).first() or (await conn.execute(sa.select(*columns).where(place.where(), c.key == key, _live()))).first()
        await self._count(place, "r")
        metrics.count("read", "miss" if row is not None else "absent")
        if row is None:
            return None
        item = {
            "scope": place.written,
            "key": row.key,
            "value": row.value,
            "version": row.version,
            "partition": row.partition,
            "expires_at": _iso(row.expires_at),
            "updated_at": _iso(row.updated_at),
        }
        if usable and self.redis is not None and not row.refresh_ttl_on_read:
            ttl = CACHE_SECONDS
            if row.expires_at is not None:
                ttl = max(1, min(ttl, int((row.expires_at - datetime.now(UTC)).total_seconds())))
            try:  # NX: never overwrite a copy; a write deletes it first, so a racing read is stale for ttl at most
                await self.redis.set(cache_key, json.dumps(item), ex=ttl, nx=True)
            except (RedisError, OSError):
                pass
        return {**item, "cached": False}

    async def delete(self, place: Place, key: str) -> bool:
        check_key(key)
        async with self.engine.begin() as conn:
            gone = await conn.scalar(
                memory_items.delete().where(place.where(), memory_items.c.key == key).returning(memory_items.c.key)
            )
            await conn.execute(memory_texts.delete().where(place.where(memory_texts), memory_texts.c.item_key == key))
        await self._invalidate(self._cache_key(place, key))
        if gone:
            await self._count(place, "w")
            await self._publish(place, key, "delete")
        return gone is not None

    async def search(
        self,
        place: Place,
        *,
        pattern: KeyPattern | None = None,
        where: dict[str, Any] | None = None,
        partition: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Items newest first (by last write), at most `limit`, and a cursor for the next page."""
        c = memory_items.c
        query = sa.select(c.key, c.value, c.version, c.partition, c.expires_at, c.updated_at).where(
            place.where(), _live()
        )
        if pattern is not None:
            query = query.where(c.key.like(pattern.like_prefix, escape="\\"), c.key.regexp_match(pattern.regex))
        if where:
            query = query.where(c.value.contains(where))
        if partition is not None:
            query = query.where(c.partition == check_partition(partition))
        if cursor:
            stamp, last_key = decode_cursor(cursor)
            query = query.where(sa.tuple_(c.updated_at, c.key) < sa.tuple_(sa.literal(stamp), sa.literal(last_key)))
        query = query.order_by(c.updated_at.desc(), c.key.desc()).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        await self._count(place, "r")
        page = rows[:limit]
        items = [
            {
                "key": r.key,
                "value": r.value,
                "version": r.version,
                "partition": r.partition,
                "expires_at": _iso(r.expires_at),
                "updated_at": _iso(r.updated_at),
            }
            for r in page
        ]
        next_cursor = encode_cursor(page[-1].updated_at, page[-1].key) if len(rows) > limit else None
        return {"scope": place.written, "items": items, "next_cursor": next_cursor}

    # ---- partitions ----
    async def partitions(self, place: Place) -> list[dict[str, Any]]:
        c = memory_items.c
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(c.partition, sa.func.count().label("n"))
                    .where(place.where(), _live())
                    .group_by(c.partition)
                    .order_by(c.partition)
                )
            ).all()
        return [{"partition": r.partition, "count": r.n} for r in rows]

    async def clear_partition(self, place: Place, partition: str) -> int:
        check_partition(partition)
        c = memory_items.c
        doomed = sa.select(c.key).where(place.where(), c.partition == partition)
        async with self.engine.begin() as conn:
            await conn.execute(
                memory_texts.delete().where(place.where(memory_texts), memory_texts.c.item_key.in_(doomed))
            )
            keys = (
                await conn.scalars(
                    memory_items.delete().where(place.where(), c.partition == partition).returning(c.key)
                )
            ).all()
        await self._invalidate(*(self._cache_key(place, k) for k in keys))
        await self._publish(place, None, "clear_partition", partition=partition, removed=len(keys))
        return len(keys)

    # ---- stats ----
    async def stats(self, place: Place) -> dict[str, Any]:
        c = memory_items.c
        expired = sa.and_(c.expires_at.is_not(None), c.expires_at <= sa.func.now())
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        sa.func.count().filter(sa.not_(expired)).label("keys"),
                        sa.func.coalesce(sa.func.sum(c.size_bytes).filter(sa.not_(expired)), 0).label("bytes"),
                        sa.func.count().filter(expired).label("expired"),
                    ).where(place.where())
                )
            ).one()
        reads = writes = hits = None
        if self.redis is not None:
            minute = int(time.time() // 60)
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for m in range(minute - STATS_WINDOW_MINUTES + 1, minute + 1):
                        pipe.hgetall(f"paygent:memstat:{place.tag()}:{m}")
                    buckets = await pipe.execute()
                reads = sum(int(b.get(b"r", b.get("r", 0))) for b in buckets)
                writes = sum(int(b.get(b"w", b.get("w", 0))) for b in buckets)
                hits = sum(int(b.get(b"h", b.get("h", 0))) for b in buckets)
            except (RedisError, OSError):
                pass
        return {
            "scope": place.written,
            "keys": row.keys,
            "bytes": int(row.bytes),
            "expired_not_pruned": row.expired,
            "reads_last_hour": reads,
            "writes_last_hour": writes,
            "cache_hit_rate": None if not reads else round(hits / reads, 4) if hits is not None else None,
        }

    # ---- texts for semantic recall ----
    async def _embedding_for(self, value: Any) -> list[float] | None:
        if isinstance(value, str) and value.strip():
            return (await self.embedder.embed([value[:MAX_TEXT_FOR_RECALL]]))[0]
        return None

    async def _store_item_text(
        self, conn: AsyncConnection, place: Place, key: str, value: Any, embedding: list[float] | None
    ) -> None:
        t = memory_texts.c
        if embedding is None:
            await conn.execute(memory_texts.delete().where(place.where(memory_texts), t.item_key == key))
            return
        insert = pg_insert(memory_texts).values(
            id=uuid.uuid4(),
            tenant_id=place.tenant_id,
            owner_id=place.owner_id,
            scope=place.scope,
            item_key=key,
            text=value[:MAX_TEXT_FOR_RECALL],
            model=self.embedder.model,
            embedding=embedding,
        )
        await conn.execute(
            insert.on_conflict_do_update(
                index_elements=["tenant_id", "owner_id", "scope", "item_key"],
                index_where=t.item_key.is_not(None),
                set_={
                    "text": insert.excluded.text,
                    "model": insert.excluded.model,
                    "embedding": insert.excluded.embedding,
                },
            )
        )

    async def memorize(self, place: Place, text: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        if not text.strip():
            raise InvalidInput("text", "must not be empty")
        if len(text) > MAX_TEXT_FOR_RECALL:
            raise InvalidInput("text", f"is longer than {MAX_TEXT_FOR_RECALL} characters")
        encode_value(metadata or {}, "metadata")
        (vector,) = await self.embedder.embed([text])
        text_id = uuid.uuid4()
        async with self.engine.begin() as conn:
            await conn.execute(
                memory_texts.insert().values(
                    id=text_id,
                    tenant_id=place.tenant_id,
                    owner_id=place.owner_id,
                    scope=place.scope,
                    text=text,
                    metadata=metadata or {},
                    model=self.embedder.model,
                    embedding=vector,
                )
            )
        await self._count(place, "w")
        await self._publish(place, None, "memorize", id=str(text_id))
        return {"id": str(text_id), "scope": place.written, "model": self.embedder.model}

    async def prune_expired(self, conn: AsyncConnection, batch: int) -> list[tuple[uuid.UUID, str, str, str]]:
        """Delete up to `batch` expired items of the transaction's tenant; returns (owner, scope, key, partition)."""
        c = memory_items.c
        doomed = (
            sa.select(c.tenant_id, c.owner_id, c.scope, c.key)
            .where(c.expires_at <= sa.func.now())
            .limit(batch)
            .with_for_update(skip_locked=True)
            .cte("doomed")
        )
        rows = (
            await conn.execute(
                memory_items.delete()
                .where(
                    sa.tuple_(c.tenant_id, c.owner_id, c.scope, c.key).in_(
                        sa.select(doomed.c.tenant_id, doomed.c.owner_id, doomed.c.scope, doomed.c.key)
                    )
                )
                .returning(c.owner_id, c.scope, c.key, c.partition)
            )
        ).all()
        return [(r.owner_id, r.scope, r.key, r.partition) for r in rows]
