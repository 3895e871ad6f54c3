"""Runs whose model is the fake Anthropic/OpenAI server, reached through the real SDKs and a real worker."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis
from temporalio.client import WorkflowFailureError
from temporalio.testing import ActivityEnvironment

from activities.agent_steps import AgentStepActivities
from paygent.db.agent_schema import agent_runs, threads
from paygent.db.agent_transcript import insert_message, load_chat
from tests.agents.helpers import of_type, sse_events, start_run, types, wait_run
from tests.fakes.llm_server import ANTHROPIC_TEST_KEY, fail, text, tool
from workflows.agent_types import LlmStepInput


async def test_overloaded_anthropic_falls_back_to_openai_and_the_events_show_it(llm_stack, fake_llm, dev):
    fake_llm.script("anthropic", fail(529, message="Overloaded"), text("Your balance looks healthy."))
    fake_llm.script("openai", tool("wallet_balance"))
    run = await start_run(llm_stack.http, dev, "how much is in my wallet?")
    events = await sse_events(llm_stack.http, dev, run["id"])

    answered = [e["data"] for e in of_type(events, "agent_thinking") if e["data"]["status"] == "answered"]
    assert answered[0]["provider"] == "openai" and answered[0]["fallback_from"] == "anthropic"
    assert "HTTP 529" in answered[0]["fallback_reason"] and answered[0]["tool_calls"] == ["wallet_balance"]
    assert answered[1]["provider"] == "anthropic" and answered[1]["fallback_from"] is None
    assert '"balance"' in of_type(events, "tool_completed")[0]["data"]["result"]
    assert events[-1]["type"] == "agent_completed"
    assert events[-1]["data"]["answer"] == "Your balance looks healthy."
    second_ask = fake_llm.requests("anthropic")[1].body["messages"]
    assert second_ask[-1]["content"][0]["type"] == "tool_result"  # the model saw the tool's answer
    assert len(fake_llm.requests("anthropic")) == 2 and len(fake_llm.requests("openai")) == 1


async def test_an_auth_error_fails_the_run_at_once_with_a_clear_message(llm_stack, fake_llm, dev, temporal_env):
    fake_llm.script("anthropic", fail(401, message=f"invalid x-api-key {ANTHROPIC_TEST_KEY}"))
    run = await start_run(llm_stack.http, dev, "balance please")
    events = await sse_events(llm_stack.http, dev, run["id"])

    assert types(events) == ["agent_started", "agent_thinking", "agent_failed"]
    error = events[-1]["data"]["error"]
    assert events[-1]["data"]["status"] == "failed"
    assert "anthropic answered HTTP 401" in error and "not retrying" in error and ANTHROPIC_TEST_KEY not in error
    final = await wait_run(llm_stack.http, dev, run["id"])
    assert final["status"] == "failed" and final["error"] == error
    assert len(fake_llm.requests("anthropic")) == 1 and fake_llm.requests("openai") == []  # no retry, no fallback
    handle = temporal_env.client.get_workflow_handle(run["workflow_id"])
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert failed.value.cause.type == "AgentRunFailed" and "HTTP 401" in failed.value.cause.message


@pytest.fixture
def step_activities(fake_llm, app_settings, db_engine, redis_url):
    settings = fake_llm.settings().model_copy(update={"database_url": app_settings.database_url})
    return AgentStepActivities(db_engine, Redis.from_url(redis_url), settings)


async def test_a_finished_llm_step_is_returned_from_storage_never_asked_again(
    step_activities, fake_llm, dev, db_engine
):
    """What a retry after a crash between the commit and Temporal hearing back would do: read, not re-ask."""
    tenant, user = uuid.UUID(dev["tenant"]["id"]), uuid.UUID(dev["users"]["alice"]["id"])
    thread_id, run_id, message_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with db_engine.begin() as conn:
        await conn.execute(threads.insert().values(id=thread_id, tenant_id=tenant, user_id=user, title="t"))
        await insert_message(
            conn,
            thread_id=thread_id,
            tenant_id=tenant,
            run_id=run_id,
            role="user",
            text="balance",
            message_id=message_id,
        )
        await conn.execute(
            agent_runs.insert().values(
                id=run_id,
                tenant_id=tenant,
                user_id=user,
                thread_id=thread_id,
                message_id=message_id,
                workflow_id=f"direct-{run_id}",
                status="running",
                max_steps=3,
            )
        )
    fake_llm.script("anthropic", tool("wallet_balance"))
    env = ActivityEnvironment()
    first = await env.run(step_activities.llm_step, LlmStepInput(run_id=str(run_id), step=1))
    again = await env.run(step_activities.llm_step, LlmStepInput(run_id=str(run_id), step=1))

    assert not first.reused and again.reused
    assert again.tool_calls == first.tool_calls and again.message_id == first.message_id
    assert len(fake_llm.requests()) == 1
    async with db_engine.connect() as conn:
        chat = await load_chat(conn, thread_id)
    assert [m.role for m in chat] == ["user", "assistant", "tool"]  # one assistant turn; its call marked not run


async def test_an_amount_sent_as_a_number_is_refused_and_the_step_limit_ends_the_run(llm_stack, fake_llm, dev):
    to = "0x" + "ab" * 20
    fake_llm.script("anthropic", tool("pay", to=to, amount=5.0, asset="USDC"), tool("wallet_balance"))
    run = await start_run(llm_stack.http, dev, "pay five", max_steps=2)
    events = await sse_events(llm_stack.http, dev, run["id"])
    paid = of_type(events, "tool_completed")[0]["data"]
    assert paid["tool"] == "pay" and paid["ok"] is False and "amount" in paid["result"]  # never rounded, never paid
    assert events[-1]["type"] == "agent_failed" and "step limit (2)" in events[-1]["data"]["error"]
    assert (await wait_run(llm_stack.http, dev, run["id"]))["status"] == "failed"
