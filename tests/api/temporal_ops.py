"""Helpers for the Temporal cancel/terminate tests: what an operator does with Temporal's own tools, and what a
user checks afterwards (the payment row, its reservation, the held-reservations figure, the audit rows)."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager

import sqlalchemy as sa

from paygent.db.engine import get_engine
from paygent.db.reservations import reservations
from paygent.db.schema import audit_log, payments
from tests.api.helpers import serve_api
from tests.ops.test_metrics import scrape, value
from workers.main import build_worker


async def row(engine, payment_id: str) -> dict:
    async with engine.connect() as conn:
        found = (await conn.execute(sa.select(payments).where(payments.c.id == uuid.UUID(payment_id)))).mappings()
        return dict(found.one())


async def reservation(engine, payment_id: str) -> str | None:
    async with engine.connect() as conn:
        return await conn.scalar(
            sa.select(reservations.c.status).where(reservations.c.payment_id == uuid.UUID(payment_id))
        )


async def audit(engine, subject_id: str, action: str) -> list[tuple[str, str, dict]]:
    """(actor, channel, data) of the subject's audit rows with this action."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(audit_log.c.actor, audit_log.c.channel, audit_log.c.data)
            .where(audit_log.c.subject_id == subject_id, audit_log.c.action == action)
            .order_by(audit_log.c.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def held_figure_matches_rows(http, engine) -> float:
    """The held-reservations gauge of /metrics equals the reservations rows still `reserved`; returns it."""
    async with engine.connect() as conn:
        held = await conn.scalar(
            sa.select(sa.func.count()).select_from(reservations).where(reservations.c.status == "reserved")
        )
    figure = value(await scrape(http), "paygent_reservations_held")
    assert figure == held, (figure, held)
    return figure


@asynccontextmanager
async def idle_queue_api(app_settings, client):
    """An API that starts workflows on a task queue no worker polls yet: a payment stays `pending` there until
    `start_worker` is called. Yields (http, start_worker)."""
    settings = app_settings.model_copy(update={"task_queue": f"paygent-idle-{uuid.uuid4().hex[:6]}"})
    workers = []

    async def start_worker() -> None:
        w = build_worker(client, settings, get_engine(settings.database_url))
        await w.__aenter__()
        workers.append(w)

    async with serve_api(settings, client) as http:
        try:
            yield http, start_worker
        finally:
            for w in workers:
                await w.__aexit__(None, None, None)


@asynccontextmanager
async def sweeping_worker(app_settings, client):
    """A worker on its own task queue whose orphan sweep judges a workflow as soon as it has closed (the
    deployed grace is a minute); yields its task queue, for one reconcile tick."""
    settings = app_settings.model_copy(
        update={"task_queue": f"paygent-sweep-{uuid.uuid4().hex[:6]}", "orphan_grace_seconds": 0}
    )
    async with build_worker(client, settings, get_engine(settings.database_url)):
        yield settings.task_queue
