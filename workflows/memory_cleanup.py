"""MemoryCleanupWorkflow: prune expired memory items, a bounded batch at a time, until none is left or the run
has done its share (the next tick of the schedule goes on). Each batch is one activity (one transaction per
tenant), so a crash loses at most the batch in progress and deletes nothing twice."""

from __future__ import annotations

from temporalio import workflow

from workflows import memory_types as m
from workflows.activity_options import DATABASE


@workflow.defn(name=m.WORKFLOW_NAME)
class MemoryCleanupWorkflow:
    @workflow.run
    async def run(self, inp: m.CleanupInput) -> m.CleanupResult:
        result = m.CleanupResult()
        while result.batches < inp.max_batches:
            batch = await workflow.execute_activity(
                m.ACT_PRUNE, inp.batch_size, result_type=m.PruneResult, **DATABASE, summary="Prune expired items"
            )
            result.batches += 1
            result.removed += batch.removed
            result.more = batch.more
            workflow.set_current_details(f"Removed {result.removed} expired memory items in {result.batches} batches")
            if not batch.more:
                break
        return result
