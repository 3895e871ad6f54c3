"""A run's events: persisted in Postgres (the record), fanned out through a Redis Stream (the live feed).

Postgres is the source of truth: `GET /v1/agent-runs/{id}/events` replays from it, and (run_id, seq) makes an
emit idempotent. Redis only makes the feed live. Stream entry ids are `0-<seq>`, so a retried XADD of the same
event is refused by Redis itself ("equal or smaller") and readers can resume from a sequence number directly.
The event type also moves the run's status in the same transaction, so status and events never disagree.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.agent_schema import agent_events, agent_runs, messages
from paygent.domain.agent_run import RUN_TERMINAL, EmitEvent, RunEventType, RunStatus, stream_key

STREAM_MAXLEN = 10_000
STREAM_TTL = timedelta(days=7)


def envelope(row: Any) -> dict[str, Any]:
    """The wire shape of one event (SSE `data:`, the Redis entry, the CLI)."""
    return {
        "run_id": str(row["run_id"]),
        "seq": int(row["seq"]),
        "type": row["type"],
        "at": row["at"].isoformat(),
        "data": row["data"],
    }


def _status_change(event: EmitEvent) -> dict[str, Any]:
    data = event.data
    if event.type == RunEventType.agent_started:
        return {"status": RunStatus.running}
    if event.type == RunEventType.approval_requested:
        return {"status": RunStatus.awaiting_approval}
    if event.type == RunEventType.payment_time_locked:
        return {"status": RunStatus.time_locked}
    if event.type == RunEventType.approval_decided:
        return {"status": RunStatus.running}
    if event.type == RunEventType.agent_thinking and isinstance(data.get("step"), int):
        return {"steps": sa.func.greatest(agent_runs.c.steps, data["step"])}
    if event.type == RunEventType.agent_completed:
        return {"status": RunStatus.completed, "answer": data.get("answer"), "finished_at": sa.func.now()}
    if event.type == RunEventType.agent_failed:
        status = RunStatus.cancelled if data.get("status") == RunStatus.cancelled else RunStatus.failed
        return {"status": status, "error": data.get("error"), "finished_at": sa.func.now()}
    return {}


async def record_event(conn: AsyncConnection, event: EmitEvent) -> dict[str, Any]:
    """Insert the event once (a retry is a no-op) and apply its status change; returns the stored envelope."""
    run_id = uuid.UUID(event.run_id)
    if event.type == RunEventType.agent_completed and "message_id" in event.data and "answer" not in event.data:
        # the workflow carries only the answer's message id; the full text is read here, once
        text = await conn.scalar(sa.select(messages.c.text).where(messages.c.id == uuid.UUID(event.data["message_id"])))
        event = event.model_copy(update={"data": {**event.data, "answer": text or ""}})
    inserted = await conn.scalar(
        pg_insert(agent_events)
        .values(
            run_id=run_id,
            seq=event.seq,
            type=event.type,
            data=event.data,
        )
        .on_conflict_do_nothing(index_elements=["run_id", "seq"])
        .returning(agent_events.c.seq)
    )
    change = _status_change(event)
    if inserted is not None and change:
        await conn.execute(
            agent_runs.update()
            .where(
                agent_runs.c.id == run_id,
                agent_runs.c.status.not_in(RUN_TERMINAL),
            )
            .values(**change, updated_at=sa.func.now())
        )
    row = (
        (
            await conn.execute(
                sa.select(agent_events).where(agent_events.c.run_id == run_id, agent_events.c.seq == event.seq)
            )
        )
        .mappings()
        .one()
    )
    return envelope(row)


async def publish(redis: Redis, payload: dict[str, Any]) -> None:
    """XADD with the event's own id; an id already there means this event was published before."""
    key = stream_key(payload["run_id"])
    try:
        await redis.xadd(
            key, {"event": json.dumps(payload)}, id=f"0-{payload['seq']}", maxlen=STREAM_MAXLEN, approximate=True
        )
    except ResponseError as exc:
        if "equal or smaller" not in str(exc):
            raise
    await redis.expire(key, STREAM_TTL)


async def load_events(
    conn: AsyncConnection, run_id: uuid.UUID, after_seq: int, limit: int = 500
) -> list[dict[str, Any]]:
    rows = (
        (
            await conn.execute(
                sa.select(agent_events)
                .where(
                    agent_events.c.run_id == run_id,
                    agent_events.c.seq > after_seq,
                )
                .order_by(agent_events.c.seq)
                .limit(limit)
            )
        )
        .mappings()
        .all()
    )
    return [envelope(r) for r in rows]


async def read_live(redis: Redis, run_id: str, after_seq: int, block_ms: int) -> list[dict[str, Any]]:
    """Events after `after_seq` from the stream, waiting up to `block_ms` for the first one."""
    # [(stream, [(entry id, {field: value})])]; redis-py types its answer as any RESP reply
    answer = cast(list[Any], await redis.xread({stream_key(run_id): f"0-{after_seq}"}, block=block_ms, count=100))
    out: list[dict[str, Any]] = []
    for _key, entries in answer or []:
        for _entry_id, fields in entries:
            raw = fields.get(b"event") or fields.get("event")
            if raw is not None:
                out.append(json.loads(raw))
    return out
