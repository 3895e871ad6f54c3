"""`paygent stack up` creates the reconcile schedule, and updates it when it exists; its ticks run the workflow."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import WorkflowExecutionStatus

from paygent.stack.reconcile_schedule import ensure_reconcile_schedule
from workflows import reconcile_types as r


async def test_schedule_is_created_then_updated_and_runs_reconcile(temporal_env, app_settings, worker):
    address = temporal_env.client.service_client.config.target_host
    assert await asyncio.to_thread(ensure_reconcile_schedule, address, app_settings.task_queue, 60) == "created"
    assert await asyncio.to_thread(ensure_reconcile_schedule, address, app_settings.task_queue, 1) == "updated"
    handle = temporal_env.client.get_schedule_handle(r.SCHEDULE_ID)
    try:
        described = await handle.describe()
        assert described.schedule.spec.intervals[0].every == timedelta(seconds=1)
        assert described.schedule.action.workflow == r.WORKFLOW_NAME
        for _ in range(300):  # a tick has run the workflow to completion
            actions = (await handle.describe()).info.recent_actions
            if actions:
                run = temporal_env.client.get_workflow_handle(
                    actions[0].action.workflow_id, run_id=actions[0].action.first_execution_run_id
                )
                await run.result()
                assert (await run.describe()).status == WorkflowExecutionStatus.COMPLETED
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the schedule never started a reconcile run")
    finally:
        await handle.delete()
