"""The Paygent worker: every workflow and activity on the `paygent` task queue.

Run with `paygent worker`. Tests build the same worker in-process with `build_worker`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Interceptor, UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.agents import agent_activities
from activities.approvals import ApprovalActivities, approval_activities
from activities.chain import ChainActivities
from activities.chain_follower import ChainFollower
from activities.memory import MemoryActivities
from activities.orphans import OrphanActivities
from activities.payments import PaymentActivities
from activities.reconcile import ReconcileActivities
from activities.swaps import SwapActivities
from activities.x402 import X402Activities
from activities.x402_sessions import X402SessionActivities
from paygent import tracing
from paygent.db.engine import get_engine
from paygent.settings import Settings, get_settings
from workers.data_errors import DataErrorInterceptor
from workers.metrics import HISTOGRAM_BUCKETS, MetricsInterceptor
from workers.tenant_context import TenantInterceptor
from workflows.agent_run import AgentRunWorkflow
from workflows.approval import ApprovalWorkflow
from workflows.chain import ChainWorkflow
from workflows.memory_cleanup import MemoryCleanupWorkflow
from workflows.payment import PaymentWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.swap import SwapWorkflow
from workflows.x402_session import X402SessionWorkflow

log = logging.getLogger("paygent.worker")


def metrics_runtime(bind_address: str) -> Runtime:
    """A Temporal runtime whose SDK metrics (task latencies, slots, polls, activity/workflow outcomes) and our
    own `paygent_*` ones (workers/metrics.py) are served in Prometheus format at http://<bind_address>/metrics.
    A port in use fails here, naming it."""
    try:
        prometheus = PrometheusConfig(bind_address=bind_address, histogram_bucket_overrides=HISTOGRAM_BUCKETS)
        return Runtime(telemetry=TelemetryConfig(metrics=prometheus))
    except ValueError as exc:
        raise SystemExit(  # noqa: B904  (the message carries exc)
            f"worker metrics: cannot listen on {bind_address} ({exc}); set "
            "PAYGENT_WORKER_METRICS_ADDRESS to a free host:port, or to nothing to turn them off"
        )


async def connect(settings: Settings, tracer_provider: TracerProvider | None = None) -> Client:
    """The worker's client: SDK metrics on their own port, and tracing when a provider is given (the worker
    takes the tracing interceptor from its client)."""
    runtime = metrics_runtime(settings.worker_metrics_address) if settings.worker_metrics_address else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
        interceptors=tracing.temporal_interceptors(tracer_provider),
    )


# Our own modules that workflows import and that hold only types, constants and pure functions (no I/O, no
# clocks, no module state that a run could change). The sandbox otherwise re-imports them for every workflow
# run it starts, rebuilding every pydantic model: profiled at 45% of the worker's CPU under load (issue 11).
# tests/workflows/test_determinism_lint.py checks these and workflows/ for clocks, randomness and I/O.
PURE_WORKFLOW_MODULES = (
    "paygent.domain",
    "paygent.llm.types",
    "paygent.x402.policy",
    "workflows.payment_types",
    "workflows.activity_options",
    "workflows.x402_types",
    "workflows.x402_session_types",
    "workflows.approval_types",
    "workflows.agent_types",
    "workflows.approval_decisions",
    "paygent.search_attributes",
    "workflows.tenant_header",
    "workflows.memory_types",
    "workflows.chain_types",
    "workflows.reconcile_types",
    "workflows.webhook_types",
    "workflows.outcome_metrics",
)


def workflow_runner(sandboxed: bool | None = None) -> WorkflowRunner:
    """No sandbox by default (PAYGENT_WORKFLOW_SANDBOX=false); else the SDK's sandbox, with the pure hashing
    libraries and our pure modules shared from the host.

    Measured with benchmarks/workflow_tasks.py (200 plain payments, 20 at a time): the sandbox re-executes the
    workflow modules for every new run, 5.3 ms of worker CPU per workflow task; unsandboxed, 2.8 ms. Without
    the sandbox, determinism is kept by the replay tests and tests/workflows/test_determinism_lint.py (no
    clock, randomness, environment or I/O in any module a workflow runs). The sandbox stays one setting away,
    e.g. to run a new workflow under its run-time checks first.

    eth_hash picks its keccak backend lazily by reading the environment, which the sandbox forbids; sharing
    the (deterministic, side-effect-free) modules and choosing the backend once here keeps workflows that
    checksum addresses or hash operations replay-safe.
    """
    from eth_utils import keccak

    keccak(b"")  # choose the backend outside the sandbox
    if not (get_settings().workflow_sandbox if sandboxed is None else sandboxed):
        return UnsandboxedWorkflowRunner()
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "eth_utils", "eth_hash", "eth_typing", "Crypto", *PURE_WORKFLOW_MODULES
        )
    )


# What the worker runs and how: the replay tests and the workflow unit tests use the same lists.
WORKFLOWS = [
    PaymentWorkflow,
    AgentRunWorkflow,
    ChainWorkflow,
    ReconcileWorkflow,
    MemoryCleanupWorkflow,
    X402SessionWorkflow,
    ApprovalWorkflow,
    SwapWorkflow,
]


def interceptors() -> list[Interceptor]:
    """Outcomes are counted (outermost, so as they finally end); data errors end an activity for good;
    activities run scoped to their workflow's tenant (RLS)."""
    return [MetricsInterceptor(), DataErrorInterceptor(), TenantInterceptor()]


def build_worker(client: Client, settings: Settings, engine: AsyncEngine, **worker_options: Any) -> Worker:
    """The worker; `worker_options` go to temporalio's Worker over the settings' (tests size its slots)."""
    payments = PaymentActivities(engine, decimals=settings.token_decimals)
    chain = ChainActivities(
        engine,
        settings.rpc_url,
        settings.master_key_bytes(),
        gas_limit=settings.transfer_gas_limit,
        confirmations=settings.confirmations_for(settings.chain_id),
        replace_after_seconds=settings.replace_after_seconds,
        receipt_wait_seconds=settings.receipt_wait_seconds,
        reconcile_interval_seconds=settings.reconcile_interval_seconds,
    )
    approvals = ApprovalActivities(engine, Redis.from_url(settings.redis_url), settings)
    swaps = SwapActivities(
        engine,
        settings.rpc_url,
        settings.master_key_bytes(),
        gas_limit=settings.swap_gas_limit,
        confirmations=settings.confirmations_for(settings.chain_id),
    )
    return Worker(
        client,
        task_queue=settings.task_queue,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_drain_seconds),
        workflow_runner=workflow_runner(),
        interceptors=interceptors(),
        workflows=[] if settings.worker_runs == "activities" else WORKFLOWS,
        # a workflows-only process still runs its payments' local activities
        no_remote_activities=settings.worker_runs == "workflows",
        **{
            "max_concurrent_workflow_tasks": settings.worker_workflow_task_slots,
            "max_concurrent_activities": settings.worker_activity_slots,
            "max_concurrent_local_activities": settings.worker_local_activity_slots,
            "max_cached_workflows": settings.worker_workflow_cache,
            **worker_options,
        },
        activities=[
            payments.reserve,
            payments.reserve_with_policy,
            payments.mark_status,
            payments.settle,
            payments.record_event,
            chain.sign_transfer,
            chain.broadcast,
            chain.sign_and_send,
            chain.await_receipt,
            chain.receipt_wait_gave_up,
            ChainFollower(chain).follow,
            *X402Activities(engine, settings).activities(),
            *X402SessionActivities(engine, settings).activities(),
            *ReconcileActivities(engine, settings).activities(),
            OrphanActivities(engine, client, grace_seconds=settings.orphan_grace_seconds).sweep_orphans,
            *agent_activities(client, settings, engine),
            *approval_activities(approvals),
            MemoryActivities(engine).prune_expired,
            *swaps.activities(),
        ],
    )


async def run(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    provider = tracing.tracer_provider("paygent-worker")  # None unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    client = await connect(settings, provider)
    worker = build_worker(client, settings, get_engine(settings.database_url))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info(
            "worker polling task queue %s at %s; metrics at %s",
            settings.task_queue,
            settings.temporal_address,
            f"http://{settings.worker_metrics_address}/metrics" if settings.worker_metrics_address else "off",
        )
        await stop.wait()
    if provider is not None:  # `paygent worker` leaves with os._exit: atexit hooks would not flush the spans
        provider.shutdown()
    log.info("worker stopped")


if __name__ == "__main__":  # `python -m workers.main`: the same as `paygent worker`
    from paygent.logs import configure

    configure(get_settings().log_level)
    asyncio.run(run())
