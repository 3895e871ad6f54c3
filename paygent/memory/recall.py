"""Nearest texts to a query, among the texts stored with `memorize` and the text values of items.

With the pgvector extension installed (migration 0017 creates it and an HNSW index on `embedding::vector(384)`
where the server offers it), the index answers (approximate, `index: "hnsw"`). Without it, an exact scan computes
the cosine (vectors are stored normalised, so a dot product) over the scope's rows of the same model
(`index: "exact_scan"`): right, but it reads every row of the scope, so it is for small scopes. Only vectors of
the query's model are compared. An item's text counts only while the item is live.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from paygent.domain.errors import InvalidInput
from paygent.memory.store import MemoryStore, Place

MAX_K = 100
_pgvector: dict[int, bool] = {}


async def has_pgvector(engine: AsyncEngine) -> bool:
    if id(engine) not in _pgvector:
        async with engine.connect() as conn:
            _pgvector[id(engine)] = bool(
                await conn.scalar(sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'vector'"))
            )
    return _pgvector[id(engine)]


async def recall(
    store: MemoryStore,
    place: Place,
    query: str,
    k: int = 5,
    where: dict[str, Any] | None = None,
    *,
    exact: bool = False,
) -> dict[str, Any]:
    """The k nearest texts; `exact` scans even where the HNSW index exists (to measure the index's recall)."""
    if not query.strip():
        raise InvalidInput("query", "must not be empty")
    if not 1 <= k <= MAX_K:
        raise InvalidInput("k", f"must be between 1 and {MAX_K}")
    (vector,) = await store.embedder.embed([query])
    hnsw = not exact and await has_pgvector(store.engine)
    params: dict[str, Any] = {
        "tenant": place.tenant_id,
        "owner": place.owner_id,
        "scope": place.scope,
        "model": store.embedder.model,
        "k": k,
        "where": json.dumps(where or {}),
    }
    if hnsw:
        params["q"] = "[" + ",".join(f"{v:.7g}" for v in vector) + "]"
        score = "1 - (t.embedding::vector(384) <=> CAST(:q AS vector(384)))"
        order = "t.embedding::vector(384) <=> CAST(:q AS vector(384))"
    else:
        params["q"] = vector
        score = "(SELECT sum(a * b) FROM unnest(t.embedding, CAST(:q AS real[])) AS v(a, b))"
        order = "score DESC"
    sql = f"""
        SELECT t.id, t.item_key, t.text, t.metadata, {score} AS score
        FROM memory_texts t
        WHERE t.tenant_id = :tenant AND t.owner_id = :owner AND t.scope = :scope AND t.model = :model
          AND t.metadata @> CAST(:where AS jsonb)
          AND (t.item_key IS NULL OR EXISTS (
                SELECT 1 FROM memory_items i
                WHERE i.tenant_id = t.tenant_id AND i.owner_id = t.owner_id AND i.scope = t.scope
                  AND i.key = t.item_key AND (i.expires_at IS NULL OR i.expires_at > now())))
        ORDER BY {order}
        LIMIT :k"""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.text(sql), params)).all()
    return {
        "scope": place.written,
        "model": store.embedder.model,
        "index": "hnsw" if hnsw else "exact_scan",
        "results": [
            {
                "id": str(r.id),
                "key": r.item_key,
                "text": r.text,
                "metadata": r.metadata,
                "score": round(float(r.score or 0.0), 6),
            }
            for r in rows
        ],
    }
