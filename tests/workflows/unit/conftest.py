"""The session's time-skipping server, told Paygent's search attributes once (the workflows upsert them)."""

from __future__ import annotations

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from tests.workflows.approval_harness import register_search_attributes


@pytest_asyncio.fixture(scope="session")
async def env(time_skipping_env: WorkflowEnvironment) -> WorkflowEnvironment:
    await register_search_attributes(time_skipping_env.client)
    return time_skipping_env
