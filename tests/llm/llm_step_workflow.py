"""A minimal workflow that runs one `llm_complete` step, so tests see the activity as a workflow would.

It imports `paygent.llm.types` inside the sandbox on purpose (no pass-through): that is the promise the types
module makes to the AgentRunWorkflow that will call this activity in its tool loop.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from paygent.llm.types import LLM_COMPLETE_ACTIVITY, LlmRequest, LlmResponse

# Fast retries so a test sees several attempts in well under a second; production policies live with the workflow.
TEST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), backoff_coefficient=1.0, maximum_attempts=3)


@workflow.defn
class LlmStepWorkflow:
    @workflow.run
    async def run(self, request: LlmRequest) -> LlmResponse:
        return await workflow.execute_activity(
            LLM_COMPLETE_ACTIVITY,
            request,
            result_type=LlmResponse,
            start_to_close_timeout=timedelta(seconds=20),
            retry_policy=TEST_RETRY,
        )
