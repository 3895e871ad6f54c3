"""The worker's own `paygent_*` metrics, exported by the Temporal runtime beside the SDK's (same port, same
scrape; PAYGENT_WORKER_METRICS_ADDRESS):

- `paygent_activity_outcomes{activity_type,outcome}`: every activity execution (each attempt) by its type and how it
  ended: `completed`, `async` (completed later by a follower), `retrying` (an error Temporal retries),
  `non_retryable` (an ApplicationError that ends the activity for good: a refusal or a data error) or
  `cancelled`. Rates of `retrying` per activity say which dependency (chain, Postgres, an LLM) is failing.
- what only workflows know: payment latency to final, approval decision latency and time to quorum, reconcile
  runs (workflows/outcome_metrics.py).

Outermost interceptor, so an error another interceptor converts (workers/data_errors.py) is counted as it
finally ends.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from workflows.outcome_metrics import HISTOGRAMS, OutcomeMetricsInterceptor

ACTIVITY_OUTCOMES = "paygent_activity_outcomes"
# seconds: from sub-second steps to approvals that wait a week
HISTOGRAM_BUCKETS = {
    name: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400] for name in HISTOGRAMS
}


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "completed"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if type(exc).__name__ == "_CompleteAsyncError":  # activity.raise_complete_async(): not an error
        return "async"
    if isinstance(exc, ApplicationError) and exc.non_retryable:
        return "non_retryable"
    return "retrying"


class _ActivityOutcomes(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        error: BaseException | None = None
        try:
            return await super().execute_activity(input)
        except BaseException as exc:
            error = exc
            raise
        finally:
            activity.metric_meter().create_counter(
                ACTIVITY_OUTCOMES, "Activity executions (attempts) by type and outcome"
            ).add(1, {"outcome": _outcome(error)})  # the meter adds activity_type, namespace and task_queue


class MetricsInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityOutcomes(next)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return OutcomeMetricsInterceptor
