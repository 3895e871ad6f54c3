"""Activity options every workflow shares, defined once: timeouts and retry policies by kind of step.

Spread into a call and add what is particular to it: `workflow.execute_activity(ACT, arg, **DATABASE,
summary="...")`. Retry policies name as non-retryable only error types something raises (paygent.domain.errors);
a deterministic failure is raised non-retryable at its source and every workflow ends cleanly on it. Options and
retry policies are not part of a workflow's history commands: changing them needs no `workflow.patched`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy

from paygent.domain.errors import ErrorType
from workflows.x402_session_types import REFUSED as SESSION_REFUSED
from workflows.x402_session_types import UNSETTLED as SESSION_UNSETTLED


class ActivityOptions(TypedDict, total=False):
    start_to_close_timeout: timedelta
    schedule_to_close_timeout: timedelta
    heartbeat_timeout: timedelta
    retry_policy: RetryPolicy


class LocalActivityOptions(TypedDict, total=False):
    """What a local activity takes (no heartbeat)."""

    start_to_close_timeout: timedelta
    schedule_to_close_timeout: timedelta
    retry_policy: RetryPolicy


# A database write or read: retried for up to an hour (a database restart must not fail a payment).
DB_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=30))
DATABASE = ActivityOptions(
    start_to_close_timeout=timedelta(seconds=15), schedule_to_close_timeout=timedelta(hours=1), retry_policy=DB_RETRY
)
# Writing ledger entries and the final status: a larger transaction.
SETTLEMENT: ActivityOptions = {**DATABASE, "start_to_close_timeout": timedelta(seconds=30)}

# A short step taken as a local activity (PAYGENT_LOCAL_STEPS): one attempt, bounded well inside the workflow task
# timeout (10 s), since the workflow task stays open while it runs. A step not done by then (a saturated worker, a
# locked row, a slow node), or failed in a way a retry may fix, is taken again as a regular activity with its own
# options and retries (workflows/payment.py). Local retries are not used: their backoff keeps the task open.
LOCAL_ATTEMPT = ActivityOptions(
    start_to_close_timeout=timedelta(seconds=3),
    schedule_to_close_timeout=timedelta(seconds=3),
    retry_policy=RetryPolicy(maximum_attempts=1),
)

# Signing and broadcasting: the activities store the signed bytes before the first send and re-send the same bytes
# on every retry, so retrying is always safe. A deleted wallet cannot come back.
CHAIN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=20),
    non_retryable_error_types=[ErrorType.wallet_missing],
)
CHAIN = ActivityOptions(
    start_to_close_timeout=timedelta(seconds=20), schedule_to_close_timeout=timedelta(hours=1), retry_policy=CHAIN_RETRY
)
# Waiting for a receipt: heartbeats every poll; gives up after PAYGENT_RECEIPT_WAIT_SECONDS (the payment then stays
# `submitted` and the reconciler settles it).
RECEIPT_WAIT = ActivityOptions(
    start_to_close_timeout=timedelta(minutes=5),
    heartbeat_timeout=timedelta(seconds=5),
    schedule_to_close_timeout=timedelta(hours=6),
    retry_policy=CHAIN_RETRY,
)
# The same wait for payments since `receipt-wait-followed`: the activity registers the wait and completes
# asynchronously; the chain follower answers it (workflows/chain.py). No heartbeat (nobody runs it meanwhile). The
# start-to-close bounds one registration: an attempt whose answer never comes (its row was lost) is retried and
# registers again. The schedule-to-close bounds the whole wait: when it passes the payment is left to the
# reconciler (the follower itself gives up sooner, at PAYGENT_RECEIPT_WAIT_SECONDS).
RECEIPT_FOLLOWED = ActivityOptions(
    start_to_close_timeout=timedelta(hours=1),
    schedule_to_close_timeout=timedelta(hours=6),
    retry_policy=CHAIN_RETRY,
)
# The chain follower: one long activity that heartbeats while it follows. When its worker dies, the heartbeat
# timeout ends the attempt and the retry (after 1 s, always) goes to a surviving worker: the failover bound is
# FOLLOWER_HEARTBEAT + 1 s + one task poll. Retried without end (it is the chain's only follower), except a node on
# the wrong chain, which no retry fixes.
FOLLOWER_HEARTBEAT = timedelta(seconds=10)
FOLLOWER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=1.0,
    maximum_interval=timedelta(seconds=1),
    maximum_attempts=0,
    non_retryable_error_types=[ErrorType.chain_mismatch],
)


def follower(run_seconds: int) -> ActivityOptions:
    """One run of the follower: it ends itself after `run_seconds`; the 2 minutes beyond are its grace to stop."""
    return ActivityOptions(
        start_to_close_timeout=timedelta(seconds=run_seconds + 120),
        heartbeat_timeout=FOLLOWER_HEARTBEAT,
        retry_policy=FOLLOWER_RETRY,
    )


# x402: a verdict of the policy or the server is final, and so is a deleted wallet (x402.sign loads its key); a lost
# answer is retried (x402.send re-sends the same signed payment).
X402_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=20),
    non_retryable_error_types=[
        ErrorType.x402_refused,
        ErrorType.x402_rejected,
        ErrorType.x402_state,
        ErrorType.wallet_missing,
    ],
)
X402_PROBE = ActivityOptions(
    start_to_close_timeout=timedelta(seconds=30),
    schedule_to_close_timeout=timedelta(minutes=10),
    retry_policy=X402_RETRY,
)
X402_SIGN: ActivityOptions = {**X402_PROBE, "schedule_to_close_timeout": timedelta(hours=1)}
X402_SEND: ActivityOptions = {**X402_SIGN, "start_to_close_timeout": timedelta(seconds=40)}

# Webhooks and event fan-out: bounded, a dead receiver must not hold a payment or an approval.
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=6
)
NOTIFY_LOOKUP = ActivityOptions(start_to_close_timeout=timedelta(seconds=10), retry_policy=NOTIFY_RETRY)  # publish
NOTIFY_DELIVER = ActivityOptions(start_to_close_timeout=timedelta(seconds=15), retry_policy=NOTIFY_RETRY)  # one POST

# Approvals (workflows/approval.py). An accepted decision must reach the audit log: retried without limit.
RECORD_DECISION = ActivityOptions(start_to_close_timeout=timedelta(seconds=30))
# A decision sent as a Signal asks the worker's PAYGENT_SIGNAL_DECISIONS first; when that is unknown, it is refused
# (the decision can still be sent through the API).
SIGNAL_GATE = ActivityOptions(
    start_to_close_timeout=timedelta(seconds=10), retry_policy=RetryPolicy(maximum_attempts=3)
)

# Agent runs (workflows/agent_run.py, workflows/agent_pay.py). An LLM step heartbeats while the model answers; a
# permanent refusal (a bad key, a bad request) or a run that is gone is not retried.
LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=[ErrorType.llm_permanent, ErrorType.agent_run_missing],
)
LLM_STEP = ActivityOptions(
    start_to_close_timeout=timedelta(minutes=3),
    heartbeat_timeout=timedelta(seconds=6),
    schedule_to_close_timeout=timedelta(minutes=15),
    retry_policy=LLM_RETRY,
)
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=5
)
TOOL = ActivityOptions(
    start_to_close_timeout=timedelta(seconds=60),
    schedule_to_close_timeout=timedelta(minutes=10),
    retry_policy=TOOL_RETRY,
)
# Recording an agent's payment (its row and audit, checked like the API's): a database step with a larger bound.
PREPARE_PAYMENT: ActivityOptions = {**DATABASE, "start_to_close_timeout": timedelta(seconds=30)}
# Cancelling an agent's payment: the activity sends the payment's `cancel` Update and waits for its answer.
CANCEL_PAYMENT = ActivityOptions(
    start_to_close_timeout=timedelta(seconds=60), schedule_to_close_timeout=timedelta(minutes=10), retry_policy=DB_RETRY
)

# Reconciliation (workflows/reconcile.py): bounded, the next tick starts over from the checkpoints.
IO_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=5
)
RECONCILE_LIST = ActivityOptions(start_to_close_timeout=timedelta(seconds=30), retry_policy=IO_RETRY)
RECONCILE_HEAD = ActivityOptions(start_to_close_timeout=timedelta(seconds=15), retry_policy=IO_RETRY)
RECONCILE_SETTLE = ActivityOptions(start_to_close_timeout=timedelta(minutes=2), retry_policy=IO_RETRY)
RECONCILE_SCAN = ActivityOptions(
    start_to_close_timeout=timedelta(minutes=10), heartbeat_timeout=timedelta(seconds=60), retry_policy=IO_RETRY
)

# An x402 session's paid request (workflows/x402_session.py): one local activity that probes, signs, sends and
# settles; the session's own refusals are final like x402's.
X402_SESSION_FETCH_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=5),
    non_retryable_error_types=[*(X402_RETRY.non_retryable_error_types or []), SESSION_REFUSED, SESSION_UNSETTLED],
)
X402_SESSION_FETCH = LocalActivityOptions(
    start_to_close_timeout=timedelta(seconds=60),
    schedule_to_close_timeout=timedelta(minutes=3),
    retry_policy=X402_SESSION_FETCH_RETRY,
)


# A swap's receipt wait (workflows/swap.py) polls and heartbeats: a dead worker's wait moves on within 5 s.
SWAP_RECEIPT = ActivityOptions(
    start_to_close_timeout=timedelta(minutes=10),
    heartbeat_timeout=timedelta(seconds=5),
    schedule_to_close_timeout=timedelta(hours=6),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)),
)
