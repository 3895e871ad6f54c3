"""Time-skipping servers for the workflow unit tests, told Paygent's search attributes (the workflows upsert them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from paygent.paths import temporal_test_server
from tests.workflows.approval_harness import register_search_attributes


@pytest_asyncio.fixture(scope="session")
async def env(time_skipping_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """The session's server, shared by every test that lets its workflows finish their activities."""
    await register_search_attributes(time_skipping_env.client)
    return time_skipping_env


@pytest_asyncio.fixture
async def isolated_env() -> AsyncIterator[WorkflowEnvironment]:
    """A server of the test's own, for a workflow that closes while one of its activities still runs.

    The time-skipping server stops skipping time while an activity runs and resumes when the activity reports;
    a report that finds its workflow closed is refused and the server never skips time again. On a shared server
    every later test waiting out a timer would hang.
    """
    own = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal_test_server()), data_converter=pydantic_data_converter
    )
    await register_search_attributes(own.client)
    yield own
    await own.shutdown()
