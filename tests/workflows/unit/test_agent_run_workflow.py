"""AgentRunWorkflow on stub activities and a scripted model: a final answer, tools, failures, the step limit, and
a continued run. Events are asserted in order with gap-free sequence numbers, as a client streaming them sees."""

from __future__ import annotations

import json

from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError, CancelledError

from paygent.domain.agent_run import RunEventType, RunStatus
from paygent.domain.errors import ErrorType
from paygent.llm.types import ToolCall
from tests.workflows.unit.agent_runs import calls_tools, event, kinds, run_agent, run_input, seqs
from tests.workflows.unit.payments import Gate, Handles
from tests.workflows.unit.stubs import Stubs, Turns, answer
from workflows import agent_types as at

BALANCE = ToolCall(id="call-1", name="wallet_balance")
THINK = [RunEventType.agent_thinking, RunEventType.agent_thinking]  # started, answered


async def test_a_run_that_answers_at_once_completes_in_one_step(env):
    inp = run_input()
    stubs = Stubs({at.ACT_LLM_STEP: answer(1, "Your balance is 1000 USDC.")})
    ended = await run_agent(env, inp, stubs)
    assert ended.result == at.AgentRunResult(
        run_id=inp.run_id, status=RunStatus.completed, steps=1, answer_excerpt="Your balance is 1000 USDC."
    )
    assert ended.state == {"status": RunStatus.completed, "step": 1, "next_seq": 5}
    assert kinds(stubs) == [RunEventType.agent_started, *THINK, RunEventType.agent_completed]
    assert seqs(stubs) == [1, 2, 3, 4]
    assert event(stubs, RunEventType.agent_started)["max_steps"] == at.DEFAULT_MAX_STEPS
    assert stubs.args(at.ACT_LLM_STEP) == [at.LlmStepInput(run_id=inp.run_id, step=1, tools=True)]
    assert {c.tenant for c in stubs.calls} == {inp.tenant_id}


async def test_a_tool_call_runs_the_tool_records_its_result_and_asks_the_model_again(env):
    inp = run_input()
    stubs = Stubs({at.ACT_LLM_STEP: Turns([calls_tools(1, BALANCE), answer(2, "1000 USDC")])})
    ended = await run_agent(env, inp, stubs)
    assert (ended.result.status, ended.result.steps) == (RunStatus.completed, 2)
    assert kinds(stubs) == [
        RunEventType.agent_started,
        *THINK,
        RunEventType.tool_executing,
        *THINK,
        RunEventType.agent_completed,
    ]
    assert seqs(stubs) == list(range(1, 9))  # the tool result is event 5, between executing (4) and thinking (6)
    [invocation] = stubs.args(at.ACT_RUN_TOOL)
    assert (invocation.call, invocation.wallet_id, invocation.user_id) == (BALANCE, inp.wallet_id, inp.user_id)
    [record] = stubs.args(at.ACT_RECORD_TOOL_RESULT)
    assert (record.step, record.seq, record.outcome.ok) == (1, 5, True)
    assert [s.step for s in stubs.args(at.ACT_LLM_STEP)] == [1, 2]


async def test_a_failing_tool_becomes_an_error_result_for_the_model(env):
    broken = ApplicationError("memory store down", type="ToolUnavailable", non_retryable=True)
    stubs = Stubs({at.ACT_LLM_STEP: Turns([calls_tools(1, BALANCE), answer(2, "sorry")]), at.ACT_RUN_TOOL: broken})
    ended = await run_agent(env, run_input(), stubs)
    assert ended.result.status == RunStatus.completed
    [record] = stubs.args(at.ACT_RECORD_TOOL_RESULT)
    assert record.outcome.ok is False
    assert json.loads(record.outcome.text) == {"error": "wallet_balance failed: ToolUnavailable: memory store down"}


async def test_a_chat_turn_never_runs_a_tool_whatever_the_model_asks(env):
    stubs = Stubs({at.ACT_LLM_STEP: calls_tools(1, BALANCE)})
    ended = await run_agent(env, run_input(tools=False), stubs)
    assert (ended.result.status, ended.result.steps) == (RunStatus.completed, 1)
    assert stubs.names(at.ACT_RUN_TOOL) == []
    assert stubs.args(at.ACT_LLM_STEP)[0].tools is False


async def test_the_step_limit_fails_the_run_with_the_reason(env):
    stubs = Stubs({at.ACT_LLM_STEP: lambda s: calls_tools(s.step, BALANCE)})  # the model never answers
    ended = await run_agent(env, run_input(max_steps=2), stubs)
    assert ended.result is None and isinstance(ended.error.cause, ApplicationError)
    assert ended.error.cause.type == ErrorType.agent_run_failed
    reason = "stopped: the step limit (2) was reached before a final answer"
    assert ended.error.cause.message == reason
    assert ended.state["status"] == RunStatus.failed
    assert kinds(stubs)[-1] == RunEventType.agent_failed
    assert event(stubs, RunEventType.agent_failed) == {"status": RunStatus.failed, "error": reason, "step": 2}
    assert len(stubs.args(at.ACT_RUN_TOOL)) == 2 and len(stubs.args(at.ACT_LLM_STEP)) == 2


async def test_a_model_that_fails_for_good_fails_the_run_at_that_step(env):
    down = ApplicationError("invalid API key", type=ErrorType.llm_permanent)  # non-retryable by the run's policy
    stubs = Stubs({at.ACT_LLM_STEP: down})
    ended = await run_agent(env, run_input(), stubs)
    assert ended.error.cause.type == ErrorType.agent_run_failed
    assert event(stubs, RunEventType.agent_failed)["error"] == "LLM step 1 failed: LlmPermanentError: invalid API key"
    assert len(stubs.args(at.ACT_LLM_STEP)) == 1  # not retried


async def test_a_continued_run_resumes_at_its_step_and_sequence_without_starting_again(env):
    # the input continue-as-new passes on (AgentRunWorkflow._loop: next_step, next_seq)
    inp = run_input(next_step=4, next_seq=30, max_steps=5)
    stubs = Stubs({at.ACT_LLM_STEP: Turns([calls_tools(4, BALANCE), answer(5, "done")])})
    ended = await run_agent(env, inp, stubs)
    assert (ended.result.status, ended.result.steps) == (RunStatus.completed, 5)
    assert RunEventType.agent_started not in kinds(stubs)
    assert seqs(stubs) == list(range(30, 37))
    assert [s.step for s in stubs.args(at.ACT_LLM_STEP)] == [4, 5]


async def test_a_long_run_continues_as_new_when_its_history_grows_and_carries_on(env):
    # The time-skipping server suggests continue-as-new at ~4,100 history events (as a real server does at its
    # configured size): one step with 240 tool calls (3 activities each) gets there, so step 2 starts a new run.
    many = [ToolCall(id=f"call-{i}", name="wallet_balance") for i in range(240)]
    inp = run_input()
    stubs = Stubs({at.ACT_LLM_STEP: Turns([calls_tools(1, *many), answer(2, "done")])})
    first = Handles()
    ended = await run_agent(env, inp, stubs, during=first)
    assert (ended.result.status, ended.result.steps) == (RunStatus.completed, 2)
    assert kinds(stubs).count(RunEventType.agent_started) == 1  # the continuation does not start the run again
    assert seqs(stubs) == list(range(1, 3 + 2 * 240 + 3 + 1))  # gap-free across the two runs
    assert [s.step for s in stubs.args(at.ACT_LLM_STEP)] == [1, 2]
    described = await env.client.get_workflow_handle(first[0].id, run_id=first[0].result_run_id).describe()
    assert described.status == WorkflowExecutionStatus.CONTINUED_AS_NEW


async def test_a_run_cancelled_while_a_tool_runs_ends_cancelled_with_one_final_event(isolated_env):
    env = isolated_env  # the tool's activity outlives the run: see the fixture
    tool = Gate(at.ToolOutcome(ok=True, text="{}"))  # the tool is still running when the cancel lands
    stubs = Stubs({at.ACT_LLM_STEP: calls_tools(1, BALANCE), at.ACT_RUN_TOOL: tool})

    async def cancel_mid_tool(handle):
        await tool.entered.wait()
        await handle.cancel()

    ended = await run_agent(env, run_input(), stubs, during=cancel_mid_tool)
    assert ended.result is None and isinstance(ended.error.cause, CancelledError)
    assert ended.state["status"] == RunStatus.cancelled
    assert kinds(stubs) == [RunEventType.agent_started, *THINK, RunEventType.tool_executing, RunEventType.agent_failed]
    assert event(stubs, RunEventType.agent_failed) == {"status": RunStatus.cancelled, "error": "cancelled", "step": 1}
    assert stubs.names(at.ACT_RECORD_TOOL_RESULT) == []
