"""The chain's long-lived workflow (`chain-<chain id>`): follower and reconciler, started by `paygent stack up`.

Idempotent: a running workflow is kept (its follower and its history go on) and told the reconcile interval
with the `configure` Signal; one that is not running is started. A stack brought up before the chain workflow
existed has the Temporal Schedule `paygent-reconcile` starting a ReconcileWorkflow every tick: it is deleted
(runs it already started finish on their own). Driven through the `temporal` CLI, like the search attributes.
"""

from __future__ import annotations

import json
import subprocess

from paygent.paths import temporal_cli
from paygent.stack.processes import StackError
from workflows import chain_types, reconcile_types


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(temporal_cli()), *args], capture_output=True, text=True, timeout=30)


def _fail(address: str, what: str, done: subprocess.CompletedProcess) -> StackError:
    return StackError(f"Temporal at {address}: could not {what}: {(done.stderr or done.stdout).strip()[-500:]}")


def ensure_chain_workflow(address: str, task_queue: str, chain_id: int, interval_seconds: int) -> list[str]:
    """Start or reconfigure the chain's workflow and remove the old schedule; returns what was done."""
    if interval_seconds < 1:
        raise StackError("PAYGENT_RECONCILE_INTERVAL_SECONDS must be at least 1")
    workflow_id = chain_types.workflow_id(chain_id, task_queue)
    config = chain_types.ChainConfig(reconcile_interval_seconds=interval_seconds)
    done: list[str] = []
    described = _run("workflow", "describe", "--workflow-id", workflow_id, "--output", "json", "--address", address)
    running = described.returncode == 0 and json.loads(described.stdout or "{}").get("workflowExecutionInfo", {}).get(
        "status"
    ) in ("WORKFLOW_EXECUTION_STATUS_RUNNING", "Running")
    if running:
        signalled = _run(
            "workflow", "signal", "--workflow-id", workflow_id, "--name", chain_types.SIGNAL_CONFIGURE,
            "--input", config.model_dump_json(), "--address", address,
        )  # fmt: skip
        if signalled.returncode != 0:
            raise _fail(address, f"configure {workflow_id}", signalled)
        done.append(f"{workflow_id} running: reconcile every {interval_seconds}s")
    else:
        inp = chain_types.ChainInput(chain_id=chain_id, task_queue=task_queue, config=config)
        started = _run(
            "workflow", "start", "--workflow-id", workflow_id, "--type", chain_types.WORKFLOW_NAME,
            "--task-queue", task_queue, "--input", inp.model_dump_json(), "--id-conflict-policy", "UseExisting",
            "--static-summary", f"Chain {chain_id}: follow blocks, complete receipt waits, reconcile",
            "--address", address,
        )  # fmt: skip
        if started.returncode != 0:
            raise _fail(address, f"start {workflow_id}", started)
        done.append(f"{workflow_id} started: reconcile every {interval_seconds}s")
    schedule = reconcile_types.SCHEDULE_ID
    if _run("schedule", "describe", "--schedule-id", schedule, "--address", address).returncode == 0:
        removed = _run("schedule", "delete", "--schedule-id", schedule, "--address", address)
        # "already completed": the CLI retried a delete that had gone through (seen under load)
        if removed.returncode != 0 and "already completed" not in (removed.stderr + removed.stdout):
            raise _fail(address, f"remove the old schedule {schedule}", removed)
        done.append(f"old schedule {schedule} removed")
    return done
