"""Pure rules: status buckets, retry-after parsing, redaction, and the shape checks on conversation turns."""

from __future__ import annotations

import email.utils

import pytest
from pydantic import ValidationError

from paygent.llm.errors import (
    PermanentLlmError,
    RetryableLlmError,
    is_retryable_status,
    parse_retry_after,
    redact,
    status_error,
)
from paygent.llm.types import ChatMessage, LlmRequest, LlmResponse, ToolCall


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses(status: int) -> None:
    assert is_retryable_status(status)
    assert isinstance(status_error("anthropic", status, None, {}, []), RetryableLlmError)


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 413, 422])
def test_permanent_statuses(status: int) -> None:
    assert not is_retryable_status(status)
    err = status_error("openai", status, "nope", {}, [])
    assert isinstance(err, PermanentLlmError) and str(err) == f"openai answered HTTP {status}: nope"


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({}, None),
        (None, None),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-1"}, None),
    ],
)
def test_parse_retry_after(headers: dict | None, expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": header}, now=now) == pytest.approx(30.0)
    assert parse_retry_after({"retry-after": email.utils.formatdate(now - 30, usegmt=True)}, now=now) == 0.0


def test_redact_hides_every_secret_and_ignores_blanks() -> None:
    assert (
        redact("key sk-123456 and sk-abcdef", ["sk-123456", None, "", "sk-abcdef"]) == "key [redacted] and [redacted]"
    )


def test_turn_shapes_are_checked_at_the_edge() -> None:
    with pytest.raises(ValidationError, match="tool_call_id"):
        ChatMessage(role="tool", text="{}")
    with pytest.raises(ValidationError, match="only an assistant"):
        ChatMessage(role="user", text="x", tool_calls=[ToolCall(id="1", name="pay")])
    with pytest.raises(ValidationError, match="only a tool message"):
        ChatMessage(role="user", text="x", tool_call_id="1")
    with pytest.raises(ValidationError):
        LlmRequest(messages=[], max_tokens=0)


def test_response_round_trips_and_becomes_the_next_assistant_turn() -> None:
    response = LlmResponse(
        tool_calls=[ToolCall(id="c", name="pay", arguments={"amount": "5"})],
        provider="openai",
        model="m",
        fallback_from="anthropic",
        fallback_reason="529",
    )
    assert LlmResponse.model_validate_json(response.model_dump_json()) == response
    turn = response.assistant_message()
    assert turn.role == "assistant" and turn.tool_calls[0].arguments == {"amount": "5"}
