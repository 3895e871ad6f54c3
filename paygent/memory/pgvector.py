"""pgvector where the Postgres server offers it: the extension and the HNSW index over the memory embeddings.

Migration 0017 does this when the extension is available as it runs; `paygent stack up` calls `ensure_pgvector`
on every start, so a server that gains the package later (Debian: postgresql-<version>-pgvector) gets the index
without a new migration. Needs the owner's connection (CREATE EXTENSION).
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from paygent.db.engine import async_url

HNSW_INDEX = (
    "CREATE INDEX IF NOT EXISTS memory_texts_hnsw ON memory_texts "
    "USING hnsw ((embedding::vector(384)) vector_cosine_ops)"
)


async def _ensure(owner_url: str) -> bool:
    engine = create_async_engine(async_url(owner_url))
    try:
        async with engine.begin() as conn:
            available = await conn.scalar(sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"))
            if not available:
                return False
            await conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
            await conn.execute(sa.text(HNSW_INDEX))
            return True
    finally:
        await engine.dispose()


def ensure_pgvector(owner_url: str) -> bool:
    """True when the extension and the index are there (created if needed); False when the server lacks it."""
    return asyncio.run(_ensure(owner_url))
