"""`paygent stack up` starts the chain workflow (follower + reconciler) once, reconfigures it when it runs, and
removes the reconcile Schedule an older stack created; its ticks reconcile and upsert PaygentReconcile."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    WorkflowExecutionStatus,
)

from paygent import search_attributes as sattr
from paygent.stack.chain_workflow import ensure_chain_workflow
from tests.reconcile.helpers import assert_replays
from workflows import chain_types as c
from workflows import reconcile_types as r


async def test_stack_up_starts_the_chain_workflow_once_and_removes_the_old_schedule(temporal_env, app_settings, worker):
    client = temporal_env.client
    address = client.service_client.config.target_host
    queue = app_settings.task_queue
    await client.create_schedule(  # what a stack brought up before the chain workflow has
        r.SCHEDULE_ID,
        Schedule(
            action=ScheduleActionStartWorkflow(r.WORKFLOW_NAME, r.ReconcileInput(), id=r.WORKFLOW_ID, task_queue=queue),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
        ),
    )
    wid = c.workflow_id(app_settings.chain_id, queue)
    handle = client.get_workflow_handle(wid)
    if (await _status(handle)) == WorkflowExecutionStatus.RUNNING:  # a receipt wait of an earlier test started it
        await handle.terminate("the test starts it as stack up does")

    first = await asyncio.to_thread(ensure_chain_workflow, address, queue, app_settings.chain_id, 1)
    assert first == [f"{wid} started: reconcile every 1s", f"old schedule {r.SCHEDULE_ID} removed"]
    run_id = (await handle.describe()).run_id
    second = await asyncio.to_thread(ensure_chain_workflow, address, queue, app_settings.chain_id, 2)
    assert second == [f"{wid} running: reconcile every 2s"]  # the same run goes on, told the new interval
    assert (await handle.describe()).run_id == run_id
    assert [s async for s in await client.list_schedules()] == []

    for _ in range(300):  # a tick has reconciled and upserted the search attribute on the chain workflow
        described = await handle.describe()
        if described.typed_search_attributes.get(sattr.RECONCILE) in (sattr.RECONCILE_CLEAN, sattr.RECONCILE_MISMATCH):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the chain workflow never ran a reconcile tick")
    assert described.status == WorkflowExecutionStatus.RUNNING
    history = json.dumps((await handle.fetch_history()).to_json_dict())
    assert r.ACT_LIST_WALLETS in history and c.ACT_FOLLOW in history
    assert r.WORKFLOW_NAME not in [w.workflow_type async for w in client.list_workflows(f"WorkflowId = '{wid}'")]
    await assert_replays(client, wid)  # its history (follower, ticks, signal) replays on this code
    await handle.terminate("test over")


async def _status(handle):
    try:
        return (await handle.describe()).status
    except Exception:
        return None
