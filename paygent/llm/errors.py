"""LLM failures, split by what the caller should do about them.

Temporal owns retries (the SDKs run with `max_retries=0`), so every provider failure must land in exactly one of
two buckets: permanent (retrying cannot help: bad key, no permission, a request the API refuses) or retryable
(overload, rate limit, server error, timeout, dropped connection). Messages are built here from status codes and
the provider's short error text, never from request objects, and are passed through `redact` so an API key can
never reach a log line, an exception or Temporal history.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable, Mapping

# 408 timeout, 409 conflict (lock contention), 429 rate limit; every 5xx including Anthropic's 529 "overloaded".
RETRYABLE_STATUSES = frozenset({408, 409, 429})


class LlmError(Exception):
    """Base of all LLM failures; `provider` is "anthropic" or "openai"."""

    def __init__(self, message: str, *, provider: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code

    def __str__(self) -> str:
        return self.message


class PermanentLlmError(LlmError):
    """Retrying the same request cannot succeed (auth, permission, invalid request): fail the step now."""


class RetryableLlmError(LlmError):
    """A transient failure; `retry_after` is the server's requested delay in seconds, when it sent one."""

    def __init__(
        self, message: str, *, provider: str, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, provider=provider, status_code=status_code)
        self.retry_after = retry_after


class MalformedToolCall(RetryableLlmError):
    """The model answered with a tool call we cannot run (bad JSON, not an object, unknown tool).

    Retryable, because sampling again (or asking the other provider) usually yields a valid call; a workflow
    must never execute a payment from arguments it had to guess at.
    """


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or HTTP date); None if absent or junk."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret that occurs in `text`; a provider may echo a key back in its error message."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


def status_error(
    provider: str, status: int, detail: str | None, headers: Mapping[str, str] | None, secrets: Iterable[str | None]
) -> LlmError:
    """The bucketed error for an HTTP error answer from `provider`."""
    text = f"{provider} answered HTTP {status}"
    if detail:
        text += f": {detail[:300]}"
    text = redact(text, secrets)
    if is_retryable_status(status):
        return RetryableLlmError(text, provider=provider, status_code=status, retry_after=parse_retry_after(headers))
    return PermanentLlmError(text, provider=provider, status_code=status)


def transport_error(provider: str, what: str) -> RetryableLlmError:
    """No HTTP answer at all (timeout, refused or dropped connection): always worth another attempt."""
    return RetryableLlmError(f"{provider} {what}", provider=provider)
