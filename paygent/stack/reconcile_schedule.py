"""The reconcile schedule: a Temporal Schedule that starts `ReconcileWorkflow` every few seconds.

`paygent stack up` creates it, or updates it when it exists (a changed interval or task queue takes effect).
Overlap policy `Skip`: a tick that finds the previous run still going is skipped, never queued, so a slow
chain cannot pile up runs. Driven through the `temporal` CLI, like the search attributes.
"""

from __future__ import annotations

import json
import subprocess

from paygent.paths import temporal_cli
from paygent.stack.processes import StackError
from workflows import reconcile_types


def _args(address: str, task_queue: str, interval_seconds: int) -> list[str]:
    return [
        "--schedule-id",
        reconcile_types.SCHEDULE_ID,
        "--workflow-id",
        reconcile_types.WORKFLOW_ID,
        "--type",
        reconcile_types.WORKFLOW_NAME,
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


def ensure_reconcile_schedule(address: str, task_queue: str, interval_seconds: int) -> str:
    """Create or update the schedule; returns "created" or "updated"."""
    if interval_seconds < 1:
        raise StackError("PAYGENT_RECONCILE_INTERVAL_SECONDS must be at least 1")
    return create_or_update(address, _args(address, task_queue, interval_seconds), "reconcile")


def create_or_update(address: str, args: list[str], what: str) -> str:
    """`temporal schedule create`, or `update` when it exists; returns "created" or "updated"."""
    cli = str(temporal_cli())
    made = subprocess.run([cli, "schedule", "create", *args], capture_output=True, text=True, timeout=30)
    if made.returncode == 0:
        return "created"
    if "already" not in (made.stderr + made.stdout).lower():
        raise StackError(
            f"Temporal at {address}: could not create the {what} schedule: {(made.stderr or made.stdout).strip()[-500:]}"
        )
    updated = subprocess.run([cli, "schedule", "update", *args], capture_output=True, text=True, timeout=30)
    if updated.returncode != 0:
        raise StackError(
            f"Temporal at {address}: could not update the {what} schedule: "
            f"{(updated.stderr or updated.stdout).strip()[-500:]}"
        )
    return "updated"
