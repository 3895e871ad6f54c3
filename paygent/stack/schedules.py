"""Temporal Schedules of the stack (the memory cleanup's): created, or updated when they exist.

Driven through the `temporal` CLI, like the search attributes. (The reconciler had a schedule too; it is now the
chain workflow's tick: paygent/stack/chain_workflow.py.)
"""

from __future__ import annotations

import subprocess

from paygent.paths import temporal_cli
from paygent.stack.processes import StackError


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
