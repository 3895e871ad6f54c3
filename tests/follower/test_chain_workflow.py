"""The chain workflow continues as new without ever running two followers, and its next run follows on."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from paygent.db.engine import get_engine
from tests.api.helpers import create, funded_wallet, new_recipient, serve_api, wait_final
from tests.reconcile.helpers import assert_replays
from tests.workflows.replay_support import replayer
from workers.main import build_worker
from workflows import chain_types as c


async def test_continue_as_new_stops_the_follower_first_and_the_next_run_follows(app_settings, temporal_env, dev, http):
    settings = app_settings.model_copy(update={"task_queue": f"chain-{uuid.uuid4().hex[:6]}"})
    wallet = await funded_wallet(http, dev, settings, 10)
    client = temporal_env.client
    wid = c.workflow_id(settings.chain_id, settings.task_queue)
    async with build_worker(client, settings, get_engine(settings.database_url)):
        first = await client.start_workflow(
            c.WORKFLOW_NAME,
            c.ChainInput(
                chain_id=settings.chain_id,
                task_queue=settings.task_queue,
                config=c.ChainConfig(reconcile_interval_seconds=1),
                ticks_per_run=2,
            ),
            id=wid,
            task_queue=settings.task_queue,
        )
        for _ in range(300):  # two ticks, then continue-as-new
            if (await client.get_workflow_handle(wid).describe()).run_id != first.result_run_id:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the chain workflow never continued as new")
        old = client.get_workflow_handle(wid, run_id=first.result_run_id)
        assert (await old.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW
        kinds = [e.event_type for e in (await old.fetch_history()).events]
        # the follower was cancelled and had stopped before the run ended: never two at once
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in kinds
        assert kinds.index(EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED) < kinds.index(
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        )
        async with serve_api(settings, client) as api:  # the next run's follower answers a new payment's wait
            body = {"wallet_id": wallet["id"], "to": new_recipient(), "amount": "1", "asset": "USDC"}
            pid = (await create(api, dev, body)).json()["id"]
            assert (await wait_final(api, dev, pid, timeout=60))["status"] == "confirmed"
        await replayer().replay_workflow(await old.fetch_history())  # the continue-as-new path replays
        await assert_replays(client, wid)
        await client.get_workflow_handle(wid).terminate("test over")
