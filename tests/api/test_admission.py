"""Admission control: past PAYGENT_MAX_PAYMENTS_IN_FLIGHT a new payment is answered 429 with Retry-After and
nothing is recorded or started; once the payments in flight drop below the limit, the same request is accepted."""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa

from paygent.db.schema import payments
from tests.api.helpers import create, new_recipient, payment_body, serve_api


async def _until(predicate, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.1)


async def test_past_the_in_flight_limit_a_payment_is_refused_429_with_retry_after(
    app_settings, temporal_env, dev, db_engine
):
    # a task queue no worker serves: the first payment stays `pending`, in flight, until it is terminated
    settings = app_settings.model_copy(
        update={
            "task_queue": f"admission-{uuid.uuid4().hex[:6]}",
            "max_payments_in_flight": 1,
            "admission_retry_after_seconds": 3,
        }
    )
    async with serve_api(settings, temporal_env.client) as http:
        first = await create(http, dev, payment_body(dev, new_recipient(), "1"))
        assert first.status_code == 202, first.text
        in_flight = f"TaskQueue = '{settings.task_queue}' AND ExecutionStatus = 'Running'"

        async def counted() -> bool:  # visibility is eventually consistent
            return (await temporal_env.client.count_workflows(in_flight)).count == 1

        await _until(counted)
        await asyncio.sleep(0.6)  # past the API's cached count
        key = uuid.uuid4().hex
        body = payment_body(dev, new_recipient(), "2")
        refused = await create(http, dev, body, key=key)
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == "3"
        error = refused.json()["error"]
        assert error["code"] == "too_many_in_flight" and error["field"] is None
        assert "1 payments are in flight" in error["message"] and "retry after 3 s" in error["message"]
        async with db_engine.connect() as conn:  # nothing recorded for the refused request
            recorded = await conn.scalar(
                sa.select(sa.func.count()).select_from(payments).where(payments.c.idempotency_key == key)
            )
        assert recorded == 0

        await temporal_env.client.get_workflow_handle(first.json()["workflow_id"]).terminate("test: free the slot")

        async def drained() -> bool:
            return (await temporal_env.client.count_workflows(in_flight)).count == 0

        await _until(drained)
        await asyncio.sleep(0.6)
        accepted = await create(http, dev, body, key=key)  # the same request, retried as told
        assert accepted.status_code == 202, accepted.text
