"""The `llm_complete` activity: one model step of an agent run, answered by `paygent.llm.router`.

The workflow owns the tool loop and the retry policy; this activity makes exactly one provider call per attempt
(the SDKs never retry on their own) and tells Temporal how to treat each failure:

- `PermanentLlmError` -> `ApplicationError(type=ErrorType.llm_permanent, non_retryable=True)`: a bad key or a refused
  request will not get better by retrying, so the run fails fast with a message an operator can act on.
- `RetryableLlmError` (overload, rate limit, 5xx, timeout, malformed tool call, both providers down) ->
  `ApplicationError(type=ErrorType.llm_retryable)`, with `next_retry_delay` set to the server's retry-after when it sent one.

Errors are raised `from None`: the SDK exceptions they replace stay out of Temporal history, and our own
messages are built without keys (see `paygent.llm.errors`).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from paygent.domain.errors import ErrorType
from paygent.llm import router
from paygent.llm.errors import PermanentLlmError, RetryableLlmError
from paygent.llm.types import LLM_COMPLETE_ACTIVITY, LlmRequest, LlmResponse
from paygent.settings import Settings, get_settings


class LlmActivities:
    """Holds the settings (keys, base URLs, models) so workers and tests can inject them explicitly."""

    def __init__(self, settings: Settings | None = None, *, timeout_seconds: float | None = None) -> None:
        self._settings = settings
        self._timeout = timeout_seconds

    @property
    def settings(self) -> Settings:
        return self._settings if self._settings is not None else get_settings()

    @activity.defn(name=LLM_COMPLETE_ACTIVITY)
    async def llm_complete(self, request: LlmRequest) -> LlmResponse:
        """One LLM step for `request`; see the module docstring for how failures map to Temporal errors."""
        try:
            response = await router.complete(request, self.settings, timeout=self._timeout)
        except PermanentLlmError as exc:
            raise ApplicationError(
                f"LLM step refused (not retrying): {exc}", type=ErrorType.llm_permanent, non_retryable=True
            ) from None
        except RetryableLlmError as exc:
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
            raise ApplicationError(
                f"LLM step failed (will retry): {exc}", type=ErrorType.llm_retryable, next_retry_delay=delay
            ) from None
        activity.logger.info(
            "llm step answered by %s (%s)%s",
            response.provider,
            response.model,
            f", fallback from {response.fallback_from}" if response.fallback_from else "",
        )
        return response
