"""Workflow interceptor: the outcomes only the worker sees, as `paygent_*` metrics beside the Temporal SDK's.

- `paygent_payment_latency_seconds{kind,status}`: a PaymentWorkflow's start (the API starts it as it answers
  the POST) to its final status.
- `paygent_approval_decision_seconds{decision}`: an approval's opening to each approve or reject it handles.
- `paygent_approval_time_to_quorum_seconds`: an approval's opening to the approval that met its threshold
  (approved approvals only; a time-lock comes after).
- `paygent_reconcile_runs{outcome}`: reconcile runs (a ReconcileWorkflow, or a tick of the chain's long-lived
  ChainWorkflow, which calls `reconcile_run`) ending `completed`, `continued` (continue-as-new) or `failed`.

Metrics are not commands: nothing here changes a history, and `workflow.metric_meter()` records nothing while
a history replays, so a replayed run is never counted twice. Pure module (shared with the sandbox).
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.worker import HandleSignalInput, HandleUpdateInput, WorkflowInboundInterceptor

PAYMENT_LATENCY = "paygent_payment_latency_seconds"
APPROVAL_DECISION = "paygent_approval_decision_seconds"
TIME_TO_QUORUM = "paygent_approval_time_to_quorum_seconds"
RECONCILE_RUNS = "paygent_reconcile_runs"
HISTOGRAMS = (PAYMENT_LATENCY, APPROVAL_DECISION, TIME_TO_QUORUM)
DECISIONS = frozenset({"approve", "reject"})  # workflows.approval_types.Decision members that decide
PAYMENT, APPROVAL, RECONCILE = "PaymentWorkflow", "ApprovalWorkflow", "ReconcileWorkflow"


def _since_start() -> float:
    return (workflow.now() - workflow.info().start_time).total_seconds()


def _observe(name: str, description: str, seconds: float, **labels: str) -> None:
    workflow.metric_meter().create_histogram_float(name, description, "s").record(max(0.0, seconds), labels)


class OutcomeMetricsInterceptor(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: Any) -> Any:
        kind = workflow.info().workflow_type
        try:
            result = await super().execute_workflow(input)
        except workflow.ContinueAsNewError:
            self._count_run(kind, "continued")
            raise
        except BaseException:  # failed, or cancelled
            self._count_run(kind, "failed")
            raise
        self._count_run(kind, "completed")
        if kind == PAYMENT:
            request = input.args[0] if input.args else None
            _observe(
                PAYMENT_LATENCY,
                "Seconds from a payment's start to its final status",
                _since_start(),
                kind=str(getattr(request, "kind", "unknown")),
                status=str(getattr(result, "status", "unknown")),
            )
        elif kind == APPROVAL and str(getattr(result, "status", "")) == "approved" and result.approvals:
            quorum = max(a.at for a in result.approvals) - workflow.info().start_time
            _observe(TIME_TO_QUORUM, "Seconds from an approval's opening to its quorum", quorum.total_seconds())
        return result

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        result = await super().handle_update_handler(input)
        self._decided(input.update)
        return result

    async def handle_signal(self, input: HandleSignalInput) -> None:
        await super().handle_signal(input)
        self._decided(input.signal)

    @staticmethod
    def _decided(name: str) -> None:
        if workflow.info().workflow_type == APPROVAL and name in DECISIONS:
            _observe(
                APPROVAL_DECISION, "Seconds from an approval's opening to a decision", _since_start(), decision=name
            )

    @staticmethod
    def _count_run(kind: str, outcome: str) -> None:
        if kind == RECONCILE:
            reconcile_run(outcome)


def reconcile_run(outcome: str) -> None:
    """Count one reconcile run (a metric, not a command: safe to call from workflow code, silent on replay)."""
    workflow.metric_meter().create_counter(RECONCILE_RUNS, "Reconcile runs by outcome").add(1, {"outcome": outcome})
