"""Response bodies in the exact shapes the Anthropic and OpenAI SDKs parse (non-streaming).

Kept apart from the server so the shapes are easy to compare with the API references; only the fields the SDKs
need, plus realistic ids and usage so code that reads them has something to read.
"""

from __future__ import annotations

import json
from typing import Any

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
}

ToolCallSpec = tuple[str | None, str, Any]  # (id or None, name, arguments)


def error_body(provider: str, status: int, message: str) -> dict[str, Any]:
    if provider == "anthropic":
        kind = ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = OPENAI_ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def anthropic_message(n: int, model: str, text: str | None, calls: list[ToolCallSpec]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for i, (call_id, name, arguments) in enumerate(calls):
        content.append({"type": "tool_use", "id": call_id or f"toolu_fake_{n}_{i}", "name": name, "input": arguments})
    return {
        "id": f"msg_fake_{n}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10 * n + 7, "output_tokens": 5 * n + 3},
    }


def openai_completion(n: int, model: str, text: str | None, calls: list[ToolCallSpec]) -> dict[str, Any]:
    tool_calls = [
        {
            "id": call_id or f"call_fake_{n}_{i}",
            "type": "function",
            "function": {"name": name, "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)},
        }
        for i, (call_id, name, arguments) in enumerate(calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": 1_700_000_000 + n,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if tool_calls else "stop"}
        ],
        "usage": {"prompt_tokens": 10 * n + 7, "completion_tokens": 5 * n + 3, "total_tokens": 15 * n + 10},
    }
