"""Memory's figures at size: 1 million keys in 1,000 scopes, the partition layout, cleanup, and recall.

    .venv/bin/python -m benchmarks.memory --keys 1000000 --scopes 1000 --vectors 10000

Self-contained: a scratch Postgres database (migrated, dropped at the end) and the Redis at REDIS_URL. It loads
the rows with one INSERT ... SELECT (the store writes them the same shape), then measures through MemoryStore,
the code the API and the MCP tools call:
- get p50/p95, uncached (each key read once, cache emptied) and cached (the same keys again);
- glob search p95 (`k/*/x` over a 1,000-key scope, newest first, 50 a page);
- clearing one partition of 100,000 keys (the indexed `partition` column: one DELETE);
- cleanup: 100,000 expired rows pruned in batches of 5,000, rows per second;
- recall: an exact scan over `--vectors` texts (p95), and, where pgvector is installed, the HNSW index's p95 and
  its recall@10 measured against that exact scan.
Nothing here is a test; it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

from paygent.db.engine import async_url
from paygent.db.memory_schema import SHARED_OWNER
from paygent.db.migrate import upgrade
from paygent.memory.embedding import LOCAL_MODEL, Embedder, local_embedding
from paygent.memory.pgvector import ensure_pgvector
from paygent.memory.recall import recall
from paygent.memory.scope import compile_pattern
from paygent.memory.store import MemoryStore, Place

ADMIN_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
WORDS = "invoice supplier payment weather lisbon approval treasury wallet ledger refund order shipment".split()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main(args: argparse.Namespace) -> None:
    name = f"paygent_bench_memory_{uuid.uuid4().hex[:6]}"
    admin = create_async_engine(async_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{async_url(ADMIN_URL).rsplit('/', 1)[0]}/{name}"
    try:
        await asyncio.to_thread(upgrade, url)
        await asyncio.to_thread(ensure_pgvector, url)
        await run(args, url)
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def run(args: argparse.Namespace, url: str) -> None:
    engine = create_async_engine(url, pool_size=10)
    redis = Redis.from_url(REDIS_URL)
    tenant = uuid.uuid4()
    per_scope = args.keys // args.scopes
    async with engine.begin() as conn:
        await conn.execute(sa.text("INSERT INTO tenants (id, name) VALUES (:t, 'bench')"), {"t": tenant})
        started = time.perf_counter()
        await conn.execute(
            sa.text("""
            INSERT INTO memory_items (tenant_id, owner_id, scope, key, value, version, partition, size_bytes,
                                      updated_at)
            SELECT :t, :o, 's' || (n % :scopes), 'k/' || (n / :scopes) || '/x',
                   jsonb_build_object('n', n, 'status', CASE WHEN n % 2 = 0 THEN 'open' ELSE 'closed' END), 1,
                   'd' || (n % 10), 30, now() - make_interval(secs => n % 100000)
            FROM generate_series(0, :total - 1) AS n"""),
            {"t": tenant, "o": SHARED_OWNER, "scopes": args.scopes, "total": args.keys},
        )
        await conn.execute(
            sa.text("""
            INSERT INTO memory_items (tenant_id, owner_id, scope, key, value, version, partition, size_bytes)
            SELECT :t, :o, 'bulk', 'b/' || n, to_jsonb(n), 1, CASE WHEN n < 100000 THEN 'big' ELSE 'small' END, 6
            FROM generate_series(0, 109999) AS n"""),
            {"t": tenant, "o": SHARED_OWNER},
        )
        await conn.execute(sa.text("ANALYZE memory_items"))
    print(
        f"loaded {args.keys:,} keys in {args.scopes:,} scopes (+110,000 in scope bulk) in {time.perf_counter() - started:.1f} s"
    )

    store = MemoryStore(engine, redis, Embedder(LOCAL_MODEL))
    place = lambda scope: Place(tenant, SHARED_OWNER, scope, scope)  # noqa: E731
    keys = [(f"s{random.randrange(args.scopes)}", f"k/{random.randrange(per_scope)}/x") for _ in range(args.reads)]
    for scope, key in keys:
        await redis.delete(store._cache_key(place(scope), key))
    for label in ("uncached", "cached"):
        samples = []
        for scope, key in keys:
            t0 = time.perf_counter()
            item = await store.get(place(scope), key)
            samples.append(time.perf_counter() - t0)
            assert item is not None and item["cached"] == (label == "cached")
        print(
            f"get {label:<9} p50 {pct(samples, 0.5):6.2f} ms   p95 {pct(samples, 0.95):6.2f} ms   ({len(samples)} reads)"
        )

    pattern, samples = compile_pattern("k/*/x"), []
    for _ in range(args.reads // 4):
        t0 = time.perf_counter()
        page = await store.search(place(f"s{random.randrange(args.scopes)}"), pattern=pattern, limit=50)
        samples.append(time.perf_counter() - t0)
        assert len(page["items"]) == 50
    print(f"glob search k/*/x  p50 {pct(samples, 0.5):6.2f} ms   p95 {pct(samples, 0.95):6.2f} ms   (1,000-key scope)")
    samples = []
    for _ in range(args.reads // 4):
        t0 = time.perf_counter()
        await store.search(place(f"s{random.randrange(args.scopes)}"), where={"status": "open"}, limit=50)
        samples.append(time.perf_counter() - t0)
    print(f'filter {{"status":"open"}} p95 {pct(samples, 0.95):6.2f} ms')

    t0 = time.perf_counter()
    removed = await store.clear_partition(place("bulk"), "big")
    print(f"clear one partition: {removed:,} keys in {time.perf_counter() - t0:.2f} s (indexed column, one DELETE)")
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE memory_items SET expires_at = now() - interval '1 s' WHERE scope IN (SELECT 's' || n FROM generate_series(0, :n - 1) n)"
            ),
            {"n": max(1, 100_000 // per_scope)},
        )
    t0, pruned = time.perf_counter(), 0
    while True:
        async with engine.begin() as conn:
            gone = await store.prune_expired(conn, 5000)
        pruned += len(gone)
        if len(gone) < 5000:
            break
    elapsed = time.perf_counter() - t0
    print(f"cleanup: {pruned:,} expired rows in {elapsed:.2f} s = {pruned / elapsed:,.0f} rows/s (batches of 5,000)")

    vectors = [" ".join(random.choices(WORDS, k=6)) + f" item {n}" for n in range(args.vectors)]
    async with engine.begin() as conn:
        for start in range(0, len(vectors), 1000):
            await conn.execute(
                sa.text(
                    "INSERT INTO memory_texts (id, tenant_id, owner_id, scope, text, model, embedding) "
                    "VALUES (:id, :t, :o, 'texts', :text, :m, :e)"
                ),
                [
                    {
                        "id": uuid.uuid4(),
                        "t": tenant,
                        "o": SHARED_OWNER,
                        "text": v,
                        "m": LOCAL_MODEL,
                        "e": local_embedding(v),
                    }
                    for v in vectors[start : start + 1000]
                ],
            )
        await conn.execute(sa.text("ANALYZE memory_texts"))
    queries = [" ".join(random.choices(WORDS, k=3)) for _ in range(20)]
    samples, exact = [], []
    for q in queries:
        t0 = time.perf_counter()
        exact.append(await recall(store, place("texts"), q, 10))
        samples.append(time.perf_counter() - t0)
    index = exact[0]["index"]
    print(
        f"recall@10 ({index}) over {args.vectors:,} texts: p50 {pct(samples, 0.5):.1f} ms   p95 {pct(samples, 0.95):.1f} ms"
    )
    if index == "hnsw":
        truth = [await recall(store, place("texts"), q, 10, exact=True) for q in queries]
        hits = sum(
            len({r["id"] for r in a["results"]} & {r["id"] for r in b["results"]})
            for a, b in zip(exact, truth, strict=True)
        )
        print(f"HNSW recall@10 against the exact scan: {hits / (10 * len(queries)):.3f}")
    else:
        print("pgvector is not installed in this Postgres: no HNSW figures (Debian: postgresql-<version>-pgvector)")
    await redis.aclose()
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--scopes", type=int, default=1_000)
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument("--vectors", type=int, default=10_000)
    asyncio.run(main(parser.parse_args()))
