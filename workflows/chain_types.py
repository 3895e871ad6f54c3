"""The chain workflow's public contract: one long-lived workflow per chain (and task queue) that runs the chain
follower (completing every payment's receipt wait) and the reconciler's ticks.

Started idempotently by `paygent stack up` and by the first receipt wait a worker registers on a chain
(activities/chain.py). The follower is an activity (activities/chain_follower.py); the reconcile tick is
`workflows.reconcile.reconcile_tick`, the body `ReconcileWorkflow` runs too.
"""

from __future__ import annotations

from pydantic import BaseModel

WORKFLOW_NAME = "ChainWorkflow"
DEFAULT_TASK_QUEUE = "paygent"
SIGNAL_CONFIGURE = "configure"  # ChainConfig: a changed reconcile interval takes effect at the next tick

ACT_FOLLOW = "chain.follow"
# The receipt wait's activity id in PaymentWorkflow (fixed, so the follower can also address a wait by
# workflow id + activity id when its registration was lost with a worker, see chain_follower.py).
RECEIPT_WAIT_ACTIVITY_ID = "receipt-wait"


def workflow_id(chain_id: int, task_queue: str = DEFAULT_TASK_QUEUE) -> str:
    """`chain-<chain id>`; a deployment on another task queue of the same namespace gets its own follower."""
    base = f"chain-{chain_id}"
    return base if task_queue == DEFAULT_TASK_QUEUE else f"{base}-{task_queue}"


class ChainConfig(BaseModel):
    # seconds between reconcile ticks; 0 runs the follower alone (tests that drive reconcile runs themselves)
    reconcile_interval_seconds: int = 15


class ChainInput(BaseModel):
    chain_id: int
    task_queue: str = DEFAULT_TASK_QUEUE
    config: ChainConfig = ChainConfig()
    ticks: int = 0  # reconcile ticks run by earlier runs of this chain's workflow (continue-as-new carries it)
    # a run continues as new after this many ticks even when the server has not suggested it yet
    ticks_per_run: int = 500


class FollowInput(BaseModel):
    chain_id: int
    task_queue: str
    # the activity returns after this long and the workflow starts it again: each attempt stays bounded
    run_seconds: int = 600


class FollowResult(BaseModel):
    completed: int = 0  # receipt waits completed (confirmed or reverted)
    gave_up: int = 0
    failed: int = 0  # failed (nonce taken by another transaction)
    passes: int = 0
    blocks: int = 0
