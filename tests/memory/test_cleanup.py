"""The cleanup workflow prunes expired items (in bounded batches, every tenant) and nothing live; the schedule
that `paygent stack up` creates runs it."""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa

from paygent.db.memory_schema import memory_items, memory_texts
from paygent.stack.memory_schedule import ensure_memory_cleanup_schedule
from tests.memory.helpers import bearer, private, put
from workflows import memory_types as m


async def _rows(db_engine, scope: str) -> dict[str, int]:
    path = scope.removeprefix("private/")
    async with db_engine.connect() as conn:
        items = await conn.scalar(sa.select(sa.func.count()).where(memory_items.c.scope == path))
        texts = await conn.scalar(sa.select(sa.func.count()).where(memory_texts.c.scope == path))
    return {"items": items, "texts": texts}


async def test_cleanup_prunes_expired_items_in_batches_and_keeps_live_ones(
    http, dev, principals, worker, temporal_env, app_settings, db_engine
):
    alice, outsider = dev["users"]["alice"]["api_key"], principals["outsider"]["key"]
    scope = private()
    for n in range(7):
        assert (await put(http, alice, scope, f"old/{n}", f"expiring text {n}", ttl_seconds=1)).status_code == 200
    assert (await put(http, outsider, scope, "old/x", "another tenant's", ttl_seconds=1)).status_code == 200
    assert (await put(http, alice, scope, "live", "stays")).status_code == 200
    await asyncio.sleep(1.2)
    assert await _rows(db_engine, scope) == {"items": 9, "texts": 9}
    result = await temporal_env.client.execute_workflow(
        m.WORKFLOW_NAME,
        m.CleanupInput(batch_size=3, max_batches=50),
        id=f"memory-cleanup-test-{uuid.uuid4().hex[:6]}",
        task_queue=app_settings.task_queue,
        result_type=m.CleanupResult,
    )
    assert result.removed >= 8 and result.batches >= 3 and result.more is False
    assert await _rows(db_engine, scope) == {"items": 1, "texts": 1}
    got = await http.get("/v1/memory/items", params={"scope": scope, "key": "live"}, headers=bearer(alice))
    assert got.json()["value"] == "stays"


async def test_the_stack_schedule_is_created_then_updated(temporal_env, app_settings):
    address = temporal_env.client.service_client.config.target_host
    made = await asyncio.to_thread(ensure_memory_cleanup_schedule, address, app_settings.task_queue, 600)
    again = await asyncio.to_thread(ensure_memory_cleanup_schedule, address, app_settings.task_queue, 300)
    assert (made, again) == ("created", "updated")
    handle = temporal_env.client.get_schedule_handle(m.SCHEDULE_ID)
    described = await handle.describe()
    await handle.delete()  # its runs would prune what other tests of this session are still looking at
    assert described.schedule.action.workflow == m.WORKFLOW_NAME
    assert described.schedule.spec.intervals[0].every.total_seconds() == 300
