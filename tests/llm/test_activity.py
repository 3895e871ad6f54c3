"""The `llm_complete` activity inside a real Temporal worker: how provider failures reach a workflow."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.llm import LlmActivities
from paygent.llm.types import ChatMessage, LlmRequest, LlmResponse, ToolSpec
from paygent.settings import Settings
from tests.fakes.llm_server import ANTHROPIC_TEST_KEY, FakeLlmServer, fail, text, tool
from tests.llm.llm_step_workflow import LlmStepWorkflow

RunStep = Callable[[Settings, LlmRequest], Awaitable[LlmResponse]]


@pytest_asyncio.fixture
async def run_step(temporal_env: WorkflowEnvironment) -> AsyncIterator[RunStep]:
    """Run one LlmStepWorkflow on a fresh task queue with a worker whose activity uses the given settings."""

    async def run(settings: Settings, request: LlmRequest) -> LlmResponse:
        queue = f"llm-test-{uuid.uuid4().hex[:8]}"
        worker = Worker(
            temporal_env.client,
            task_queue=queue,
            workflows=[LlmStepWorkflow],
            activities=[LlmActivities(settings, timeout_seconds=5).llm_complete],
        )
        async with worker:
            return await temporal_env.client.execute_workflow(
                LlmStepWorkflow.run, request, id=f"llm-step-{uuid.uuid4()}", task_queue=queue
            )

    yield run


def request(tools: list[ToolSpec], words: str = "balance") -> LlmRequest:
    return LlmRequest(messages=[ChatMessage.user(words)], tools=tools)


def activity_failure(exc: WorkflowFailureError) -> ApplicationError:
    assert isinstance(exc.cause, ActivityError)
    assert isinstance(exc.cause.cause, ApplicationError)
    return exc.cause.cause


async def test_permanent_error_fails_fast_as_non_retryable(run_step, fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("anthropic", fail(401, message=f"invalid x-api-key {ANTHROPIC_TEST_KEY}"))
    with pytest.raises(WorkflowFailureError) as caught:
        await run_step(fake_llm.settings(), request(product_tools))
    error = activity_failure(caught.value)
    assert error.type == "LlmPermanentError" and error.non_retryable
    assert "anthropic answered HTTP 401" in error.message and ANTHROPIC_TEST_KEY not in error.message
    assert len(fake_llm.requests("anthropic")) == 1 and fake_llm.requests("openai") == []


async def test_server_error_is_retried_by_temporal(run_step, fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("anthropic", fail(500), tool("wallet_balance"))
    response = await run_step(fake_llm.settings(openai=False), request(product_tools))
    assert response.provider == "anthropic" and response.tool_calls[0].name == "wallet_balance"
    assert len(fake_llm.requests("anthropic")) == 2


async def test_retry_after_sets_the_next_attempt_delay(run_step, fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("anthropic", fail(429, retry_after="1"), text("ok"))
    response = await run_step(fake_llm.settings(openai=False), request(product_tools))
    first, second = fake_llm.requests("anthropic")
    assert response.text == "ok"
    assert second.received_at - first.received_at >= 0.9  # the policy alone would wait 0.1 s


async def test_fallback_is_visible_in_the_workflow_result(run_step, fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("anthropic", fail(529))
    fake_llm.script("openai", tool("wallet_balance"))
    response = await run_step(fake_llm.settings(), request(product_tools))
    assert response.provider == "openai" and response.fallback_from == "anthropic"
    assert len(fake_llm.requests("anthropic")) == 1 and len(fake_llm.requests("openai")) == 1


async def test_both_providers_down_stays_retryable_until_attempts_run_out(
    run_step, fake_llm: FakeLlmServer, product_tools
) -> None:
    fake_llm.script("anthropic", fail(529), fail(529), fail(529))
    fake_llm.script("openai", fail(503), fail(503), fail(503))
    with pytest.raises(WorkflowFailureError) as caught:
        await run_step(fake_llm.settings(), request(product_tools))
    error = activity_failure(caught.value)
    assert error.type == "LlmRetryable" and not error.non_retryable
    assert "HTTP 529" in error.message and "HTTP 503" in error.message
    assert len(fake_llm.requests("anthropic")) == 3 and len(fake_llm.requests("openai")) == 3


async def test_no_keys_runs_the_offline_planner(run_step, fake_llm: FakeLlmServer, product_tools) -> None:
    response = await run_step(fake_llm.settings(anthropic=False, openai=False), request(product_tools))
    assert response.provider == "offline" and response.tool_calls[0].name == "wallet_balance"
    assert fake_llm.requests() == []
