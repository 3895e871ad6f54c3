"""ChainWorkflow: one long-lived workflow per chain, id `chain-<chain id>`: the chain follower and the reconciler.

- **Follower.** The activity `chain.follow` (activities/chain_follower.py) follows the chain's blocks and completes
  every payment's receipt wait. It runs on one worker at a time: a workflow has one pending attempt of it, and
  the heartbeat timeout moves it to a surviving worker when its worker dies (FOLLOWER_HEARTBEAT + 1 s + one
  poll). Each attempt returns after `run_seconds` and is started again, so no attempt is unbounded.
- **Reconciler.** Every `reconcile_interval_seconds` the workflow runs one reconcile pass inline
  (`ReconcileWorkflow.tick`), which upserts `PaygentReconcile` (mismatch/clean) on this workflow.
- **One row in the UI.** Neither the ticks nor the follower start runs of their own; when the history grows the
  workflow cancels the follower, waits until it has stopped (never two followers), and continues as new.

A signal `configure` changes the reconcile interval (`paygent stack up` sends it when the setting changed).
"""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError

from workflows import chain_types as c
from workflows import reconcile_types as r
from workflows.activity_options import follower
from workflows.outcome_metrics import reconcile_run
from workflows.reconcile import ReconcileWorkflow

IDLE_SECONDS = 3600  # with the reconciler off, how often the loop wakes to check the history size
FOLLOWER_PAUSE = timedelta(seconds=30)  # after the follower failed for good (wrong chain): try again this late
FOLLOW_SECONDS = 600


@workflow.defn(name=c.WORKFLOW_NAME)
class ChainWorkflow:
    @workflow.init
    def __init__(self, inp: c.ChainInput) -> None:
        self._config = inp.config
        self._woken = False

    @workflow.signal(name=c.SIGNAL_CONFIGURE)
    def configure(self, config: c.ChainConfig) -> None:
        self._config = config
        self._woken = True

    @workflow.run
    async def run(self, inp: c.ChainInput) -> None:
        follow = c.FollowInput(chain_id=inp.chain_id, task_queue=inp.task_queue, run_seconds=FOLLOW_SECONDS)
        follower = self._follow(follow)
        restart_at: datetime | None = None  # when a follower that failed for good is tried again
        reconciler = ReconcileWorkflow()
        ticks, next_tick = 0, workflow.now()
        while True:
            if follower.done():
                if _failed(follower) and restart_at is None:
                    restart_at = workflow.now() + FOLLOWER_PAUSE
                if restart_at is None or workflow.now() >= restart_at:
                    follower, restart_at = self._follow(follow), None
            interval = self._config.reconcile_interval_seconds
            if interval > 0 and workflow.now() >= next_tick:
                ticks += 1
                next_tick = workflow.now() + timedelta(seconds=interval)
                try:
                    result = await reconciler.tick(r.ReconcileInput(), split=False)
                except ActivityError as err:  # the database or the node is away: the next tick starts over
                    workflow.logger.warning("reconcile tick %d failed: %s", inp.ticks + ticks, err.cause or err)
                    reconcile_run("failed")
                else:
                    reconcile_run("completed")
                    workflow.set_current_details(
                        f"Chain {inp.chain_id}: following blocks; reconcile tick {inp.ticks + ticks}: "
                        f"{result.wallets} wallets, {result.mismatches} mismatches, {result.findings} findings"
                    )
            if workflow.info().is_continue_as_new_suggested() or ticks >= inp.ticks_per_run:
                break
            until = next_tick if interval > 0 else workflow.now() + timedelta(seconds=IDLE_SECONDS)
            if restart_at is not None:
                until = min(until, restart_at)
            self._woken = False
            try:
                await workflow.wait_condition(
                    functools.partial(self._wake, follower),
                    timeout=max(until - workflow.now(), timedelta(milliseconds=1)),
                )
            except TimeoutError:
                pass
        if not follower.done():
            follower.cancel()
        try:
            await follower  # the follower has stopped before the next run starts its own
        except (ActivityError, CancelledError):
            pass
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(inp.model_copy(update={"config": self._config, "ticks": inp.ticks + ticks}))

    def _wake(self, follower: asyncio.Task) -> bool:
        """The loop has something to do: the follower ended its run (start the next), or a signal came."""
        return (follower.done() and not _failed(follower)) or self._woken

    def _follow(self, follow: c.FollowInput) -> asyncio.Task:
        return asyncio.ensure_future(
            workflow.execute_activity(
                c.ACT_FOLLOW,
                follow,
                result_type=c.FollowResult,
                **follower(follow.run_seconds),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=f"Follow chain {follow.chain_id}: complete receipt waits",
            )
        )


def _failed(task: asyncio.Task) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)
