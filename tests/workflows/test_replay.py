"""Runs in flight at a deploy carry on: every history recorded under tests/workflows/histories/ replays on today's
workflow code (the worker's workflows, sandbox, converter and interceptors) without a nondeterminism error.

Each directory holds the histories one version of the code wrote (docs/ARCHITECTURE.md, "Changing workflow code"):
- 64ccdf3/: every workflow's main paths, recorded by `make record-histories` at 64ccdf3 (before issue 10's
  refactors of the vocabulary and PaymentWorkflow).
- e672782/: the same tests at e672782, after those refactors: runs started on it take the new branch of
  `approval-status-time-locked-v1`, and the next change to a workflow must replay them too.
- f9d234a/: the same tests at f9d234a, the code the hot-path, follower, decisions and cancellation work changed:
  every workflow change made after it replays these.
- before_push/: recorded at ac6a27c, before payments pushed their progress to the parent run (patches
  `agent-run-payment-push-v1`, `payment-progress-to-parent-v1`, `approval-progress-to-parent-v1`):
  tests/agents/test_approvals.py and the time-lock tests of tests/approvals/test_approval_flow.py.
- before_integrity/: an ApprovalWorkflow from before the signal-decisions gate (patch `signal-decisions-gate`),
  recorded from a `git archive` of the branch point with stand-in activities (only their results are in history).
- before_raw_signals/: an ApprovalWorkflow from before decision Signals were decoded raw (patch
  `approval-signal-bodies-decoded-raw`): the SDK dropped its `reject` Signal with an unpaired surrogate unseen,
  then an Update rejected it. Recorded at f9d234a's workflows/approval.py.
- before_temporal_cancel/: payments cancelled with Temporal's tools (awaiting approval; after broadcast) on f9d234a,
  before `payment-honours-temporal-cancel`: they replay its old branch. temporal_cancel/: tests/api/
  test_temporal_cancel.py and test_temporal_terminate.py on the new code (the new branches, reconcile ticks with
  `reconcile-sweeps-orphans`).
- before_swap_push/: swaps and swap runs recorded at 2c4ceea, before swaps pushed their progress to the run (patches
  `swap-progress-to-parent-v1`, `agent-run-swap-push-v1`): tests/agents/test_swap_runs.py (a run's swap, with and
  without an approval) and tests/swaps/test_swap_sandwich.py's approval tests (one refreshed, one cancelled).

The last test shows the rule the fixtures enforce on a throwaway workflow: a new timer without `workflow.patched`
fails to replay an old history; behind the patch it replays, and new runs take the new path.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Replayer, Worker
from temporalio.workflow import NondeterminismError

from tests.workflows.replay_support import HISTORIES_ROOT, fixture_files, load_history, replay_all, workflow_type

WORKFLOWS_DIR = Path(__file__).parents[2] / "workflows"
PATCH_DOCS = Path(__file__).parents[2] / "docs" / "workflow-patches.md"

# How many histories of each workflow type each directory holds: a lost or unreadable fixture fails here.
EXPECTED = {
    "64ccdf3": {"PaymentWorkflow": 19, "ApprovalWorkflow": 17, "AgentRunWorkflow": 7, "ReconcileWorkflow": 3},
    "e672782": {"PaymentWorkflow": 19, "ApprovalWorkflow": 17, "AgentRunWorkflow": 7, "ReconcileWorkflow": 3},
    "f9d234a": {"PaymentWorkflow": 19, "ApprovalWorkflow": 17, "AgentRunWorkflow": 7, "ReconcileWorkflow": 3},
    "before_push": {"PaymentWorkflow": 5, "ApprovalWorkflow": 5, "AgentRunWorkflow": 3},
    "before_integrity": {"ApprovalWorkflow": 1},
    "before_raw_signals": {"ApprovalWorkflow": 1},
    "before_temporal_cancel": {"PaymentWorkflow": 2, "ApprovalWorkflow": 1},
    "temporal_cancel": {"PaymentWorkflow": 6, "ApprovalWorkflow": 4, "ReconcileWorkflow": 2},
    "before_swap_push": {"SwapWorkflow": 4, "ApprovalWorkflow": 3, "AgentRunWorkflow": 2},
}


async def test_every_recorded_history_replays_on_todays_code():
    directories = sorted(p for p in HISTORIES_ROOT.iterdir() if p.is_dir())
    found = {d.name: dict(Counter(workflow_type(f) for f in fixture_files(d))) for d in directories}
    assert found == EXPECTED
    histories = [load_history(f) for d in directories for f in fixture_files(d)]
    assert await replay_all(histories) == {}


def test_every_patch_id_in_the_workflows_is_listed_in_the_patch_docs():
    ids = set()
    for path in sorted(WORKFLOWS_DIR.glob("*.py")):
        module = importlib.import_module(f"workflows.{path.stem}")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("patched", "deprecate_patch"):
                ids.add(eval(ast.unparse(node.args[0]), vars(module)))  # a literal or a constant's name
    assert len(ids) >= 7
    listed = PATCH_DOCS.read_text()
    assert [i for i in sorted(ids) if f"| `{i}` |" not in listed] == []


def test_the_pre_gate_approval_history_holds_the_signals_it_was_recorded_for():
    (path,) = fixture_files(HISTORIES_ROOT / "before_integrity")
    history = load_history(path)
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert signals == ["approve", "approve", "cancel"]


def test_the_pre_raw_signals_history_holds_the_signal_the_sdk_dropped():
    (path,) = fixture_files(HISTORIES_ROOT / "before_raw_signals")
    signaled = [
        e.workflow_execution_signaled_event_attributes
        for e in load_history(path).events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert [s.signal_name for s in signaled] == ["reject"]
    assert b"\\ud800" in signaled[0].input.payloads[0].data  # the escape the SDK's JSON parser refuses


# --- the rule, shown on a throwaway approval gate: v1 waits for a decision with no bound; v2 bounds the wait
# (a timer: a new command), which is the change planned for PaymentWorkflow's `_approval_gate`. Like the payment,
# the gate does work while it waits (an approval's progress runs an activity): the recorded activity then meets
# v2's timer where history has none. (A wait that ends before anything else is emitted would hide the timer: the
# SDK drops a timer started and cancelled with no event. Do not rely on that; patch every new command.)

BOUNDED_WAIT_PATCH = "demo-bounded-approval-wait"
APPROVAL_TIMEOUT = timedelta(days=1)


@activity.defn(name="gate_demo.record_progress")
async def record_progress(note: str) -> str:
    return note


class _Gate:
    def __init__(self) -> None:
        self.decision: str | None = None

    @workflow.signal
    def decide(self, decision: str) -> None:
        self.decision = decision

    @workflow.signal
    async def progress(self, note: str) -> None:
        await workflow.execute_activity(record_progress, note, start_to_close_timeout=timedelta(seconds=10))

    async def bounded_wait(self) -> str:
        try:
            await workflow.wait_condition(lambda: self.decision is not None, timeout=APPROVAL_TIMEOUT)
        except TimeoutError:
            return "expired"
        return self.decision or ""

    async def unbounded_wait(self) -> str:
        await workflow.wait_condition(lambda: self.decision is not None)
        return self.decision or ""


@workflow.defn(name="GateDemo", sandboxed=False)
class GateV1(_Gate):
    @workflow.run
    async def run(self) -> str:
        return await self.unbounded_wait()


@workflow.defn(name="GateDemo", sandboxed=False)
class GateV2Unpatched(_Gate):
    @workflow.run
    async def run(self) -> str:
        return await self.bounded_wait()


@workflow.defn(name="GateDemo", sandboxed=False)
class GateV2Patched(_Gate):
    @workflow.run
    async def run(self) -> str:
        if workflow.patched(BOUNDED_WAIT_PATCH):
            return await self.bounded_wait()
        return await self.unbounded_wait()


async def _tasks_done(handle: WorkflowHandle, count: int) -> None:
    """Until `count` workflow tasks have completed: each Signal then lands in a workflow task of its own."""
    for _ in range(200):
        events = (await handle.fetch_history()).events
        if sum(e.HasField("workflow_task_completed_event_attributes") for e in events) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the run never completed {count} workflow tasks")


async def _run(client: Client, gate: type[_Gate], decision: str | None) -> WorkflowHandle:
    """A run of `gate`: waiting, told of one approval's progress, then given `decision` (None: nobody decides)."""
    queue = f"gate-demo-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[gate], activities=[record_progress]):
        handle = await client.start_workflow("GateDemo", id=f"gate-demo-{uuid.uuid4()}", task_queue=queue)
        if decision is not None:
            await _tasks_done(handle, 1)
            await handle.signal("progress", "1 of 2 approvals")
            await _tasks_done(handle, 3)  # the Signal's task, then the activity's result
            await handle.signal("decide", decision)
        await handle.result()
    return handle


async def test_a_new_timer_replays_an_old_history_only_behind_workflow_patched(time_skipping_env):
    client = time_skipping_env.client
    v1_history = await (await _run(client, GateV1, "approved")).fetch_history()

    unpatched = await Replayer(workflows=[GateV2Unpatched]).replay_workflow(v1_history, raise_on_replay_failure=False)
    assert isinstance(unpatched.replay_failure, NondeterminismError), unpatched.replay_failure
    patched = await Replayer(workflows=[GateV2Patched]).replay_workflow(v1_history, raise_on_replay_failure=False)
    assert patched.replay_failure is None, patched.replay_failure

    # and a new run takes the new path: nobody decides, the day passes (time-skipping), the wait ends "expired"
    new_run = await _run(client, GateV2Patched, None)
    assert await new_run.result() == "expired"
