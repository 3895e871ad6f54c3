"""Bare Temporal, the yardstick for the side-by-side benchmark: the same server, no Paygent code at all.

`BareWorkflow(n)` runs n no-op activities one after another (a payment's shape without its work);
`BareUpdateWorkflow` answers an Update at once (an approval's shape without its rules or audit) and ends when
told to. Both run on a private task queue with an in-process worker (`bare_worker`), sandboxed like
Paygent's own workflows, so the comparison is one worker process against one worker process.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

UPDATE = "decide"
FINISH = "finish"


@activity.defn(name="bare.noop")
async def noop(step: int) -> int:
    return step


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    @workflow.run
    async def run(self, activities: int) -> int:
        for step in range(activities):
            await workflow.execute_activity("bare.noop", step, start_to_close_timeout=timedelta(seconds=30))
        return activities


@workflow.defn(name="BareUpdateWorkflow")
class BareUpdateWorkflow:
    def __init__(self) -> None:
        self._done = False
        self._decisions = 0

    @workflow.update(name=UPDATE)
    async def decide(self, who: str) -> int:
        self._decisions += 1
        return self._decisions

    @workflow.signal(name=FINISH)
    def finish(self) -> None:
        self._done = True

    @workflow.run
    async def run(self) -> int:
        try:  # the benchmark finishes it; left over, it ends by itself
            await workflow.wait_condition(lambda: self._done, timeout=timedelta(minutes=30))
        except TimeoutError:
            pass
        return self._decisions


def bare_worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=[BareWorkflow, BareUpdateWorkflow], activities=[noop])
