"""Worker CPU per workflow task, and server round trips, of a plain payment (no database, chain or API).

A private dev server; one process runs only Paygent's workflows (the deployed runner and interceptors), this
process runs stub activities (tests/workflows/unit/stubs.py) and starts the payments. The workflow process's
CPU time (user + system, every thread, from /proc) over the run, divided by the workflow tasks its payments
completed, is the worker CPU per workflow task; the SDK's `temporal_workflow_task_execution_latency` histogram
gives the median activation time beside it.

    PYTHONPATH=. .venv/bin/python benchmarks/workflow_tasks.py --payments 300 --concurrency 20 [--local-steps]
    PAYGENT_WORKFLOW_SANDBOX=false ...   # the unsandboxed runner (workers/main.py)

Keep runs short on a shared machine: 300 payments take well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from paygent import search_attributes
from paygent.domain.payment import payment_workflow_id
from paygent.netutil import free_port
from paygent.paths import temporal_cli

# frames of py-spy stacks that belong to running a workflow activation (on the event loop or in the SDK's
# workflow thread pool, sandboxed or not)
ACTIVATION_FRAMES = (
    "_WorkflowWorker._handle_activation",
    "_WorkflowWorker._create_workflow_instance",
    "_Instance._run_code",
    "_WorkflowInstanceImpl.activate",
)
ROUND_TRIPS = (EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)


async def workflow_worker(address: str, task_queue: str, metrics: str) -> None:
    """The workflow-only worker (no activities): what the deployed worker runs for workflow tasks."""
    from workers.main import WORKFLOWS, interceptors, metrics_runtime, workflow_runner

    client = await Client.connect(address, data_converter=pydantic_data_converter, runtime=metrics_runtime(metrics))
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        workflow_runner=workflow_runner(),
        interceptors=interceptors(),
    ):
        await asyncio.Event().wait()


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency_median_ms(metrics_url: str) -> float | None:
    """The median of the SDK's workflow-task execution latency histogram (linear within its bucket)."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    buckets: dict[float, float] = {}
    for m in re.finditer(r'temporal_workflow_task_execution_latency_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)', text):
        le = float("inf") if m[1] == "+Inf" else float(m[1])
        buckets[le] = buckets.get(le, 0) + float(m[2])
    if not buckets:
        return None
    total, prev_le, prev_n = buckets[float("inf")], 0.0, 0.0
    for le in sorted(buckets):
        n = buckets[le]
        if n >= total / 2:
            span = n - prev_n
            return prev_le + (le - prev_le) * ((total / 2 - prev_n) / span if span else 0)
        prev_le, prev_n = le, n
    return None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--payments", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--local-steps", action="store_true")
    parser.add_argument("--py-spy", help="path of py-spy: profile the workflow process during the run")
    parser.add_argument("--profile-seconds", type=int, default=10)
    args = parser.parse_args()

    from tests.workflows.unit.stubs import Stubs, payment_request
    from workflows.payment import PaymentWorkflow

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli()),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_extra_args=["--log-level", "error"],
    )
    task_queue = f"bench-{uuid.uuid4().hex[:6]}"
    metrics = f"127.0.0.1:{free_port()}"
    address = env.client.service_client.config.target_host
    proc = subprocess.Popen(  # noqa: ASYNC220  (started once, before the measured run)
        [sys.executable, __file__, "--worker", address, task_queue, metrics], start_new_session=True
    )
    try:
        async with Worker(env.client, task_queue=task_queue, activities=Stubs().activities()):
            await asyncio.sleep(3)  # imports done, polling
            warm = payment_request(50, local_steps=args.local_steps)
            await env.client.execute_workflow(
                PaymentWorkflow.run, warm, id=payment_workflow_id(warm.payment_id), task_queue=task_queue
            )
            profile = f"/tmp/workflow-tasks-{task_queue}.raw"
            spy = None
            if args.py_spy:
                spy = subprocess.Popen(  # noqa: ASYNC220  (started once, before the measured run)
                    [args.py_spy, "record", "-p", str(proc.pid), "-d", str(args.profile_seconds), "-r", "100"]
                    + ["-f", "raw", "-o", profile, "--nonblocking"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            before, started = cpu_seconds(proc.pid), time.monotonic()
            gate = asyncio.Semaphore(args.concurrency)
            ids: list[str] = []

            async def one() -> None:
                async with gate:
                    req = payment_request(50, local_steps=args.local_steps)
                    ids.append(payment_workflow_id(req.payment_id))
                    await env.client.execute_workflow(PaymentWorkflow.run, req, id=ids[-1], task_queue=task_queue)

            await asyncio.gather(*(one() for _ in range(args.payments)))
            wall, cpu = time.monotonic() - started, cpu_seconds(proc.pid) - before
            median = latency_median_ms(f"http://{metrics}/metrics")
            history = await env.client.get_workflow_handle(ids[0]).fetch_history()
            if spy is not None:
                await asyncio.to_thread(spy.wait)
    finally:
        proc.kill()
        proc.wait()
        await env.shutdown()
    tasks = sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in history.events)
    trips = sum(e.event_type in ROUND_TRIPS for e in history.events)
    sandbox = os.environ.get("PAYGENT_WORKFLOW_SANDBOX", "default")
    print(f"sandbox={sandbox} local_steps={args.local_steps} payments={args.payments} in {wall:.1f} s")
    print(f"round trips per payment: {trips} ({tasks} workflow tasks)")
    print(f"workflow worker CPU: {cpu:.2f} s = {1000 * cpu / (tasks * args.payments):.2f} ms per workflow task")
    if median is not None:
        print(f"SDK workflow task execution latency, median: {median:.2f} ms")
    if args.py_spy:
        print(profile_shares(profile))


def profile_shares(path: str) -> str:
    """Shares of py-spy's samples: workflow activations, and within them creating the workflow instance."""
    total = activation = create = compile_ = 0
    for line in open(path):
        stack, _, count = line.rstrip().rpartition(" ")
        n = int(count)
        total += n
        if any(marker in stack for marker in ACTIVATION_FRAMES):
            activation += n
            create += n * ("_create_workflow_instance" in stack)
            compile_ += n * ("source_to_code" in stack)

    def share(part: int, whole: int) -> str:
        return f"{100 * part / whole:.1f}%" if whole else "-"

    return (
        f"py-spy: {total} samples, workflow activations {share(activation, total)}; of those, "
        f"_create_workflow_instance {share(create, activation)}, source_to_code {share(compile_, activation)}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        asyncio.run(workflow_worker(*sys.argv[2:5]))
    else:
        asyncio.run(main())
