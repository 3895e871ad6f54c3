"""Following one agent run's events, for the SSE endpoint and the WebSocket channel alike.

Postgres is the record, Redis the live feed (paygent/db/agent_events.py). `follow_run` replays what Postgres has
after a sequence number, then reads the run's Redis Stream until a terminal event, re-reading Postgres on every
idle tick so an event the stream missed is still delivered. It only ever yields the next sequence number, so a
consumer that stops reading (a slow client) stops the follower too: nothing piles up, and when it reads again
the follower continues from Postgres where it stopped. Each read runs under the caller's tenant (the context's
`use_tenant`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from paygent.db.agent_events import load_events, read_live
from paygent.db.agent_schema import agent_runs
from paygent.domain.agent_run import RUN_TERMINAL, TERMINAL_EVENTS

if TYPE_CHECKING:
    from api.deps import Deps

log = logging.getLogger("paygent.api.run_events")
LIVE_BLOCK_MS = 5_000
STREAM_MAX_SECONDS = 3_600  # a client resumes from its last sequence number after this


async def follow_run(
    d: Deps,
    run_id: uuid.UUID,
    after: int,
    *,
    live_block_ms: int = LIVE_BLOCK_MS,
    max_seconds: float = STREAM_MAX_SECONDS,
) -> AsyncIterator[dict[str, Any] | None]:
    """Yield the run's events after `after`, in order and each once, until its terminal event; None is a
    keep-alive tick (nothing new for `live_block_ms`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    last = after
    while loop.time() < deadline:
        async with d.engine.connect() as conn:
            # status first: the terminal event commits with the status, so a terminal status read here means
            # the load below sees that event (read the other way round, a run finishing in between is lost)
            status = await conn.scalar(sa.select(agent_runs.c.status).where(agent_runs.c.id == run_id))
            stored = await load_events(conn, run_id, last)
        for event in stored:
            yield event
            last = event["seq"]
            if event["type"] in TERMINAL_EVENTS:
                return
        if status in RUN_TERMINAL and not stored:
            return  # finished without a terminal event (e.g. never started): nothing more will come
        try:
            live = await read_live(d.redis, str(run_id), last, live_block_ms)
        except Exception:  # the live feed is an optimisation: fall back to polling Postgres
            log.warning("redis stream unavailable for run %s; polling", run_id, exc_info=True)
            live = []
            await asyncio.sleep(1)
        for event in live:
            if event["seq"] == last + 1:  # only in order; anything else is re-read from Postgres above
                yield event
                last = event["seq"]
                if event["type"] in TERMINAL_EVENTS:
                    return
        if not live:
            yield None
