"""Which model answers a step: Anthropic first, OpenAI as fallback, the offline planner when no key is set.

Fallback happens only on failures another provider can plausibly avoid (overload, rate limit, 5xx, timeout,
a malformed tool call). A permanent error (bad key, refused request) is raised as is: falling back would hide a
configuration problem behind a different model's answer. The response records any fallback, so the audit trail
shows which provider actually decided.
"""

from __future__ import annotations

from pydantic import SecretStr

from paygent.llm import anthropic_provider, offline_planner, openai_provider
from paygent.llm.errors import LlmError, MalformedToolCall, PermanentLlmError, RetryableLlmError
from paygent.llm.types import LlmRequest, LlmResponse
from paygent.settings import Settings


def has_key(key: SecretStr | None) -> bool:
    return key is not None and bool(key.get_secret_value().strip())


def describe_failure(exc: RetryableLlmError) -> str:
    """A short, key-free reason for `fallback_reason` (our own messages never carry a key)."""
    kind = "malformed tool call" if isinstance(exc, MalformedToolCall) else "retryable error"
    return f"{kind}: {exc}"


async def complete(request: LlmRequest, settings: Settings, *, timeout: float | None = None) -> LlmResponse:
    """Answer one LLM step. Raises `PermanentLlmError` or `RetryableLlmError` (incl. `MalformedToolCall`)."""
    anthropic_on = has_key(settings.anthropic_api_key)
    openai_on = has_key(settings.openai_api_key)
    extra = {} if timeout is None else {"timeout": timeout}
    if not anthropic_on and not openai_on:
        return offline_planner.plan(request)
    if not anthropic_on:
        return await openai_provider.complete(request, settings, **extra)
    try:
        return await anthropic_provider.complete(request, settings, **extra)
    except RetryableLlmError as primary:
        if not openai_on:
            raise
        try:
            response = await openai_provider.complete(request, settings, **extra)
        except LlmError as secondary:
            raise both_failed(primary, secondary) from None
        return response.model_copy(update={"fallback_from": "anthropic", "fallback_reason": describe_failure(primary)})


def both_failed(primary: RetryableLlmError, secondary: LlmError) -> RetryableLlmError:
    """Both providers failed; the step stays retryable because the primary's failure was transient.

    Even when the fallback refuses permanently (say a revoked OpenAI key), Anthropic may recover on the next
    attempt, so failing the agent run outright would be wrong; the message names both causes for the operator.
    """
    delays = [
        e.retry_after for e in (primary, secondary) if isinstance(e, RetryableLlmError) and e.retry_after is not None
    ]
    kind = "permanently" if isinstance(secondary, PermanentLlmError) else "too"
    return RetryableLlmError(
        f"{primary}; fallback failed {kind}: {secondary}",
        provider="anthropic+openai",
        status_code=primary.status_code,
        retry_after=max(delays) if delays else None,
    )
