"""The memory cleanup schedule: a Temporal Schedule that starts `MemoryCleanupWorkflow` every few minutes.

`paygent stack up` creates or updates it (paygent/stack/schedules.py). Overlap policy `Skip`: a run still pruning
makes the next tick skip.
"""

from __future__ import annotations

import json

from paygent.stack.schedules import create_or_update
from workflows import memory_types


def ensure_memory_cleanup_schedule(address: str, task_queue: str, interval_seconds: int) -> str:
    args = [
        "--schedule-id",
        memory_types.SCHEDULE_ID,
        "--workflow-id",
        memory_types.WORKFLOW_ID,
        "--type",
        memory_types.WORKFLOW_NAME,
        "--task-queue",
        task_queue,
        "--interval",
        f"{int(interval_seconds)}s",
        "--overlap-policy",
        "Skip",
        "--input",
        json.dumps({}),
        "--address",
        address,
    ]
    return create_or_update(address, args, "memory cleanup")
