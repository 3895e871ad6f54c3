"""OpenAI Chat Completions adapter: our `LlmRequest` -> `chat.completions.create` -> our `LlmResponse`.

Used as the fallback when Anthropic is overloaded (or as the only provider when only its key is set). Same rules
as the Anthropic adapter: `max_retries=0` so Temporal owns retries, one client per call, and tool arguments
must decode to a JSON object naming an offered tool, else `MalformedToolCall`.
"""

from __future__ import annotations

import json
from typing import Any

import openai

from paygent.llm.errors import MalformedToolCall, status_error, transport_error
from paygent.llm.types import ChatMessage, LlmRequest, LlmResponse, ProviderName, ToolCall
from paygent.settings import Settings

PROVIDER: ProviderName = "openai"
DEFAULT_TIMEOUT_SECONDS = 60.0


def to_messages(messages: list[ChatMessage], system: str | None) -> list[dict[str, Any]]:
    """Our turns as Chat Completions messages (tool results are `role: tool` with their `tool_call_id`)."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        if message.role == "tool":
            out.append({"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text or ""})
        elif message.role == "assistant":
            turn: dict[str, Any] = {"role": "assistant", "content": message.text}
            if message.tool_calls:
                turn["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments, separators=(",", ":"))},
                    }
                    for c in message.tool_calls
                ]
            out.append(turn)
        else:
            out.append({"role": "user", "content": message.text or ""})
    return out


def to_tools(request: LlmRequest) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.input_schema}}
        for t in request.tools
    ]


def parse_arguments(name: str, raw: object) -> dict[str, Any]:
    """Decode a tool call's arguments string; anything but a JSON object is refused, never guessed at."""
    if not isinstance(raw, str):
        raise MalformedToolCall(f"{PROVIDER} gave {name!r} arguments that are not a JSON string", provider=PROVIDER)
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise MalformedToolCall(
            f"{PROVIDER} gave {name!r} arguments that are not valid JSON ({exc.msg})", provider=PROVIDER
        ) from None
    if not isinstance(value, dict):
        raise MalformedToolCall(f"{PROVIDER} gave {name!r} arguments that are not a JSON object", provider=PROVIDER)
    return value


def from_completion(completion: Any, request: LlmRequest) -> LlmResponse:
    if not completion.choices:
        raise transport_error(PROVIDER, "answered with no choices")
    message = completion.choices[0].message
    known = request.tool_names()
    calls: list[ToolCall] = []
    for call in message.tool_calls or []:
        function = getattr(call, "function", None)
        if function is None:  # a non-function ("custom") tool call: we never offer those
            raise MalformedToolCall(f"{PROVIDER} made a {getattr(call, 'type', '?')!r} tool call", provider=PROVIDER)
        if function.name not in known:
            raise MalformedToolCall(f"{PROVIDER} called unknown tool {function.name!r}", provider=PROVIDER)
        calls.append(
            ToolCall(id=call.id, name=function.name, arguments=parse_arguments(function.name, function.arguments))
        )
    usage = {}
    if completion.usage is not None:
        usage = {"input_tokens": completion.usage.prompt_tokens, "output_tokens": completion.usage.completion_tokens}
    return LlmResponse(
        text=message.content or None, tool_calls=calls, provider=PROVIDER, model=str(completion.model), usage=usage
    )


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    parts = [p for p in (exc.type, exc.code, body.get("message")) if p]
    return ": ".join(str(p) for p in parts)


async def complete(request: LlmRequest, settings: Settings, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> LlmResponse:
    """One Chat Completions call; SDK errors come out as `PermanentLlmError` / `RetryableLlmError`."""
    if settings.openai_api_key is None:
        raise ValueError("openai_api_key is not set")
    key = settings.openai_api_key.get_secret_value()
    kwargs: dict[str, Any] = {
        "model": settings.openai_model,
        "max_completion_tokens": request.max_tokens,
        "messages": to_messages(request.messages, request.system),
    }
    if request.tools:
        kwargs["tools"] = to_tools(request)
    try:
        async with openai.AsyncOpenAI(
            api_key=key, base_url=settings.openai_base_url, max_retries=0, timeout=timeout
        ) as client:
            completion = await client.chat.completions.create(**kwargs)
    except openai.APIStatusError as exc:
        raise status_error(PROVIDER, exc.status_code, _detail(exc), exc.response.headers, [key]) from None
    except openai.APITimeoutError:
        raise transport_error(PROVIDER, f"did not answer within {timeout:g}s") from None
    except openai.APIConnectionError:
        raise transport_error(PROVIDER, "could not be reached (connection error)") from None
    except openai.APIResponseValidationError:
        raise transport_error(PROVIDER, "sent a response that does not parse") from None
    return from_completion(completion, request)
