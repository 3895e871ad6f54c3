"""Recording workflow histories from the tests: with PAYGENT_RECORD_HISTORIES=<dir> set, every test that uses a
Temporal server writes the histories of the workflows it ran to <dir>/<WorkflowType>-<test name>.json.gz.

tests/conftest.py loads these fixtures only when the variable is set. `make record-histories` runs the tests that
walk each workflow's main paths with it set (docs/ARCHITECTURE.md, "Changing workflow code");
tests/workflows/test_replay.py replays every such directory on today's code.

Which workflows a test ran: the executions the server lists (open and closed) that were not listed after the
previous test. Both servers answer ListOpen/ListClosed (the time-skipping one has no list query). Workflows a
module fixture starts are counted to the first test of the module. Only the worker's workflow types are kept.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio import workflow
from temporalio.api.workflowservice.v1 import ListClosedWorkflowExecutionsRequest, ListOpenWorkflowExecutionsRequest
from temporalio.client import Client

from tests.workflows.replay_support import WORKER_WORKFLOWS, write_history

RECORD_DIR_ENV = "PAYGENT_RECORD_HISTORIES"
SERVERS = ("temporal_env", "time_skipping_env")
SETTLE_SECONDS = 5.0  # how long a test's open workflows get to close before their history is read

# the names the worker registers them under (the SDK keeps a class's @workflow.defn on the class)
WORKER_WORKFLOW_TYPES = {workflow._Definition.must_from_class(cls).name for cls in WORKER_WORKFLOWS}

_listed: dict[int, set[tuple[str, str]]] = {}  # by client: executions already counted to an earlier test
_written: set[str] = set()  # file names written in this session


@pytest.fixture
def _recording_clients(request: pytest.FixtureRequest) -> list[Client]:
    """The clients of the Temporal servers this test uses (a sync fixture: starting a server runs the loop)."""
    return [request.getfixturevalue(name).client for name in SERVERS if name in request.fixturenames]


@pytest_asyncio.fixture(autouse=True)
async def record_histories(request: pytest.FixtureRequest, _recording_clients: list[Client]) -> AsyncIterator[None]:
    for client in _recording_clients:
        if id(client) not in _listed:
            _listed[id(client)] = set(await _executions(client))
    yield
    if not _recording_clients:
        return
    out = Path(os.environ[RECORD_DIR_ENV])
    for client in _recording_clients:
        new = await _new_executions(client)
        recorded: set[str] = set()
        for (workflow_id, run_id), (kind, _open) in new:
            # the first run of each type: a test of fifty payments records their path once, not their load
            if kind not in WORKER_WORKFLOW_TYPES or kind in recorded:
                continue
            recorded.add(kind)
            history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
            write_history(out / _file_name(kind, request.node.name), history)


async def _new_executions(client: Client) -> list[tuple[tuple[str, str], tuple[str, bool]]]:
    """This test's executions in start order, after giving the open ones a few seconds to close."""
    seen = _listed[id(client)]
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while True:
        listed = await _executions(client)
        new = {key: value for key, value in listed.items() if key not in seen}
        if not any(is_open for _kind, is_open, _start in new.values()):
            break
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    seen.update(new)
    ordered = sorted(new.items(), key=lambda item: (item[1][2], item[0]))
    return [(key, (kind, is_open)) for key, (kind, is_open, _start) in ordered]


async def _executions(client: Client) -> dict[tuple[str, str], tuple[str, bool, float]]:
    """Every execution the server lists: (workflow id, run id) -> (type, open, start time)."""
    found: dict[tuple[str, str], tuple[str, bool, float]] = {}
    service = client.workflow_service
    # open first: a run that closes between the two calls is then listed (closed) by the second
    for is_open, call, request_type in (
        (True, service.list_open_workflow_executions, ListOpenWorkflowExecutionsRequest),
        (False, service.list_closed_workflow_executions, ListClosedWorkflowExecutionsRequest),
    ):
        token = b""
        while True:
            page = await call(request_type(namespace=client.namespace, maximum_page_size=1000, next_page_token=token))
            for e in page.executions:
                key = (e.execution.workflow_id, e.execution.run_id)
                found[key] = (e.type.name, is_open, e.start_time.ToNanoseconds() / 1e9)
            token = page.next_page_token
            if not token:
                break
    return found


def _file_name(kind: str, test_name: str) -> str:
    """`<WorkflowType>-<test name>[-<n>].json.gz`, the test name shortened and made a safe file name."""
    scenario = re.sub(r"[^A-Za-z0-9]+", "-", test_name.removeprefix("test_")).strip("-")[:70].rstrip("-")
    stem, n = f"{kind}-{scenario}", 1
    while (name := f"{stem}{'' if n == 1 else f'-{n}'}.json.gz") in _written:
        n += 1
    _written.add(name)
    return name
