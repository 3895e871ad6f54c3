"""Items over HTTP: versions and compare-and-set, TTLs, patterns, filters, pages, partitions, stats."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from paygent.db.memory_schema import memory_items
from tests.memory.helpers import bearer, fresh_scope, get, private, put


async def test_put_get_versions_and_compare_and_set(http, dev):
    alice = dev["users"]["alice"]["api_key"]
    scope = private()
    first = await put(http, alice, scope, "plan", {"step": 1})
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    assert (await put(http, alice, scope, "plan", {"step": 2})).json()["version"] == 2
    stale = await put(http, alice, scope, "plan", {"step": 3}, if_version=1)
    assert stale.status_code == 409
    assert stale.json()["error"]["field"] == "if_version"
    assert "current version 2" in stale.json()["error"]["message"]
    assert (await put(http, alice, scope, "plan", {"step": 3}, if_version=2)).json()["version"] == 3
    create_only = await put(http, alice, scope, "plan", {"step": 9}, if_version=0)
    assert create_only.status_code == 409
    got = (await get(http, alice, scope, "plan")).json()
    assert got["value"] == {"step": 3} and got["version"] == 3 and got["scope"] == scope
    gone = await http.delete("/v1/memory/items", params={"scope": scope, "key": "plan"}, headers=bearer(alice))
    assert gone.json()["deleted"] is True
    assert (await get(http, alice, scope, "plan")).status_code == 404


async def test_fifty_concurrent_increments_lose_none(http, dev):
    alice = dev["users"]["alice"]["api_key"]
    scope = private()
    assert (await put(http, alice, scope, "counter", 0)).status_code == 200

    async def increment() -> int:
        conflicts = 0
        while True:
            item = (await get(http, alice, scope, "counter")).json()
            answer = await put(http, alice, scope, "counter", item["value"] + 1, if_version=item["version"])
            if answer.status_code == 200:
                return conflicts
            assert answer.status_code == 409, answer.text
            conflicts += 1

    conflicts = await asyncio.gather(*(increment() for _ in range(50)))
    final = (await get(http, alice, scope, "counter")).json()
    assert final["value"] == 50
    assert final["version"] == 51
    assert sum(conflicts) > 0  # they did contend


async def test_ttl_hides_at_once_and_refresh_on_read_moves_the_expiry(http, dev, db_engine):
    alice = dev["users"]["alice"]["api_key"]
    scope = private()
    assert (await put(http, alice, scope, "short", "soon gone", ttl_seconds=1)).status_code == 200
    assert (await get(http, alice, scope, "short")).status_code == 200  # also fills the cache
    refreshed = await put(http, alice, scope, "kept", "read me", ttl_seconds=2, refresh_ttl_on_read=True)
    assert refreshed.status_code == 200
    for _ in range(3):  # each read moves the expiry 2 s on
        await asyncio.sleep(0.9)
        assert (await get(http, alice, scope, "kept")).status_code == 200
    assert (await get(http, alice, scope, "short")).status_code == 404  # expired, cached copy or not
    async with db_engine.connect() as conn:  # not pruned yet: the row is there, the read does not show it
        assert await conn.scalar(sa.select(sa.func.count()).where(memory_items.c.key == "short")) >= 1
    stats = (await http.get("/v1/memory/stats", params={"scope": scope}, headers=bearer(alice))).json()
    assert stats["keys"] == 1 and stats["expired_not_pruned"] == 1
    search = (await http.get("/v1/memory/search", params={"scope": scope}, headers=bearer(alice))).json()
    assert [i["key"] for i in search["items"]] == ["kept"]


async def test_patterns_stay_within_parts_and_escape_like_wildcards(http, dev):
    alice = dev["users"]["alice"]["api_key"]
    scope = private()
    for k in ("orders/1/status", "orders/2/status", "orders/1/x/status", "orders/1/total", "a_b", "axb"):
        assert (await put(http, alice, scope, k, {"k": k})).status_code == 200

    async def keys(**params) -> set[str]:
        answer = await http.get("/v1/memory/search", params={"scope": scope, **params}, headers=bearer(alice))
        assert answer.status_code == 200, answer.text
        return {i["key"] for i in answer.json()["items"]}

    assert await keys(pattern="orders/*/status") == {"orders/1/status", "orders/2/status"}
    assert await keys(pattern="orders/**/status") == {"orders/1/status", "orders/2/status", "orders/1/x/status"}
    assert await keys(pattern="orders/1/*") == {"orders/1/status", "orders/1/total"}
    assert await keys(pattern="a_b") == {"a_b"}  # `_` is a character here, not LIKE's wildcard
    assert await keys(prefix="a_") == {"a_b"}
    assert await keys(pattern="a?b") == {"a_b", "axb"}
    bad = await http.get("/v1/memory/search", params={"scope": scope, "pattern": "a%b"}, headers=bearer(alice))
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "pattern"


async def test_filters_and_newest_first_pages(http, dev):
    alice = dev["users"]["alice"]["api_key"]
    scope = private()
    for n in range(7):
        status = "open" if n % 2 == 0 else "closed"
        assert (await put(http, alice, scope, f"ticket/{n}", {"status": status, "n": n})).status_code == 200
    seen, cursor = [], None
    while True:
        params = {"scope": scope, "filter": '{"status": "open"}', "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await http.get("/v1/memory/search", params=params, headers=bearer(alice))).json()
        seen += [i["value"]["n"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [6, 4, 2, 0]
    bad = await http.get("/v1/memory/search", params={"scope": scope, "filter": "[1]"}, headers=bearer(alice))
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "filter"


async def test_clearing_one_partition_leaves_the_others(http, dev):
    alice = dev["users"]["alice"]["api_key"]
    scope = private()
    for day, count in (("2026-12-01", 3), ("2026-12-02", 5), ("2026-12-03", 2)):
        for n in range(count):
            assert (await put(http, alice, scope, f"{day}/{n}", n, partition=day)).status_code == 200
    listed = (await http.get("/v1/memory/partitions", params={"scope": scope}, headers=bearer(alice))).json()
    assert listed["partitions"] == [
        {"partition": "2026-12-01", "count": 3},
        {"partition": "2026-12-02", "count": 5},
        {"partition": "2026-12-03", "count": 2},
    ]
    assert (await get(http, alice, scope, "2026-12-02/4")).status_code == 200  # a cached copy to drop
    cleared = await http.delete("/v1/memory/partitions/2026-12-02", params={"scope": scope}, headers=bearer(alice))
    assert cleared.json() == {"scope": scope, "partition": "2026-12-02", "removed": 5}
    assert (await get(http, alice, scope, "2026-12-02/4")).status_code == 404
    after = (await http.get("/v1/memory/partitions", params={"scope": scope}, headers=bearer(alice))).json()
    assert after["partitions"] == [{"partition": "2026-12-01", "count": 3}, {"partition": "2026-12-03", "count": 2}]


async def test_stats_match_the_rows(http, dev, db_engine):
    alice = dev["users"]["alice"]["api_key"]
    scope = private()
    values = ["x" * 10, {"a": [1, 2, 3]}, 42]
    for n, value in enumerate(values):
        await put(http, alice, scope, f"k{n}", value)
    for _ in range(4):
        await get(http, alice, scope, "k0")
    stats = (await http.get("/v1/memory/stats", params={"scope": scope}, headers=bearer(alice))).json()
    async with db_engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(sa.func.count(), sa.func.sum(memory_items.c.size_bytes)).where(
                    memory_items.c.scope == scope.removeprefix("private/")
                )
            )
        ).one()
    assert (stats["keys"], stats["bytes"]) == (row[0], row[1]) == (3, len('"xxxxxxxxxx"') + len('{"a":[1,2,3]}') + 2)
    assert stats["writes_last_hour"] == 3
    assert stats["reads_last_hour"] == 4
    assert stats["cache_hit_rate"] == 0.75  # the first read filled the cache, the next three hit it


async def test_bad_input_names_the_field(http, dev):
    alice = dev["users"]["alice"]["api_key"]
    cases = [
        ({"key": "k", "value": 1, "scope": "a b"}, "scope"),
        ({"key": "has space", "value": 1}, "key"),
        ({"key": "k", "value": "x" * 9000}, "value"),
        ({"key": "k", "value": 1, "ttl_seconds": 0}, "ttl_seconds"),
        ({"key": "k", "value": 1, "partition": "a/b"}, "partition"),
        ({"key": "k", "value": 1, "refresh_ttl_on_read": True}, "refresh_ttl_on_read"),
    ]
    for body, field in cases:
        answer = await http.put("/v1/memory/items", json=body, headers=bearer(alice))
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["field"] == field, (body, answer.text)
    shared = fresh_scope()
    assert (await get(http, alice, shared, "nothing")).status_code == 404
