"""Anthropic Messages API adapter: our `LlmRequest` -> `messages.create` -> our `LlmResponse`.

The SDK runs with `max_retries=0` because Temporal owns retries (an SDK retry hidden inside one activity attempt
would double the latency budget and blur what history records). A client is opened per call: clients bind to an
event loop and to settings, and connection reuse is noise next to model latency.
"""

from __future__ import annotations

from typing import Any

import anthropic

from paygent.llm.errors import MalformedToolCall, status_error, transport_error
from paygent.llm.types import ChatMessage, LlmRequest, LlmResponse, ProviderName, ToolCall
from paygent.settings import Settings

PROVIDER: ProviderName = "anthropic"
DEFAULT_TIMEOUT_SECONDS = 60.0


def to_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Our turns as Messages API turns.

    Tool results become `tool_result` blocks in a *user* turn, and consecutive turns of one role are merged,
    because the API wants all results of a parallel tool call in the single user turn that follows it.
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        blocks: list[dict[str, Any]] = []
        if message.role == "tool":
            role = "user"
            blocks.append({"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.text or ""})
        else:
            role = message.role
            if message.text:  # the API refuses empty text blocks
                blocks.append({"type": "text", "text": message.text})
            for call in message.tool_calls:
                blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def to_tools(request: LlmRequest) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in request.tools]


def from_message(message: Any, request: LlmRequest) -> LlmResponse:
    """Map a `Message` back; a tool call we could not safely run raises `MalformedToolCall`."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    known = request.tool_names()
    for block in message.content:
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(block.text)
        elif kind == "tool_use":
            if block.name not in known:
                raise MalformedToolCall(f"{PROVIDER} called unknown tool {block.name!r}", provider=PROVIDER)
            if not isinstance(block.input, dict):
                raise MalformedToolCall(
                    f"{PROVIDER} gave {block.name!r} arguments that are not a JSON object", provider=PROVIDER
                )
            calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(block.input)))
    usage = {}
    if message.usage is not None:
        usage = {"input_tokens": message.usage.input_tokens, "output_tokens": message.usage.output_tokens}
    return LlmResponse(
        text="".join(texts) or None, tool_calls=calls, provider=PROVIDER, model=str(message.model), usage=usage
    )


async def complete(request: LlmRequest, settings: Settings, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> LlmResponse:
    """One Messages API call; SDK errors come out as `PermanentLlmError` / `RetryableLlmError`."""
    if settings.anthropic_api_key is None:
        raise ValueError("anthropic_api_key is not set")
    key = settings.anthropic_api_key.get_secret_value()
    kwargs: dict[str, Any] = {
        "model": settings.anthropic_model,
        "max_tokens": request.max_tokens,
        "messages": to_messages(request.messages),
    }
    if request.system:
        kwargs["system"] = request.system
    if request.tools:
        kwargs["tools"] = to_tools(request)
    try:
        async with anthropic.AsyncAnthropic(
            api_key=key, base_url=settings.anthropic_base_url, max_retries=0, timeout=timeout
        ) as client:
            message = await client.messages.create(**kwargs)
    except anthropic.APIStatusError as exc:
        detail = ": ".join(str(p) for p in (exc.type, exc.api_message) if p)
        raise status_error(PROVIDER, exc.status_code, detail, exc.response.headers, [key]) from None
    except anthropic.APITimeoutError:
        raise transport_error(PROVIDER, f"did not answer within {timeout:g}s") from None
    except anthropic.APIConnectionError:
        raise transport_error(PROVIDER, "could not be reached (connection error)") from None
    except anthropic.APIResponseValidationError:
        raise transport_error(PROVIDER, "sent a response that does not parse") from None
    return from_message(message, request)
