"""Provider-neutral LLM request/response models.

Pure pydantic, no I/O: workflows import these (the Temporal sandbox re-imports them), the activity passes them
through `pydantic_data_converter`, and each provider adapter maps them to its own wire format. Keeping one shape
here means an agent's conversation survives a switch from Anthropic to OpenAI (or to the offline planner) mid-run.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

# The activity's registered name: workflows call it by this string so they never import `activities/`.
LLM_COMPLETE_ACTIVITY = "llm_complete"

Role = Literal["user", "assistant", "tool"]
ProviderName = Literal["anthropic", "openai", "offline"]


class ToolSpec(BaseModel):
    """A tool the model may call; `input_schema` is a JSON Schema object for the tool's arguments."""

    name: str
    description: str
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolCall(BaseModel):
    """One call the model asked for. `arguments` is always a JSON object: providers refuse anything else."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ChatMessage(BaseModel):
    """One turn. A `tool` message carries a tool's result (as text, usually JSON) for `tool_call_id`."""

    role: Role
    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _shape_matches_role(self) -> ChatMessage:
        # Refused here, at the edge, rather than as an opaque 400 from a provider several steps later.
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.role != "tool" and self.tool_call_id is not None:
            raise ValueError("only a tool message may carry tool_call_id")
        if self.role != "assistant" and self.tool_calls:
            raise ValueError("only an assistant message may carry tool_calls")
        return self

    @classmethod
    def user(cls, text: str) -> ChatMessage:
        return cls(role="user", text=text)

    @classmethod
    def tool_result(cls, tool_call_id: str, text: str) -> ChatMessage:
        return cls(role="tool", tool_call_id=tool_call_id, text=text)


class LlmRequest(BaseModel):
    """Everything one model step needs; the workflow builds it, the `llm_complete` activity answers it."""

    messages: list[ChatMessage]
    tools: list[ToolSpec] = Field(default_factory=list)
    system: str | None = None
    max_tokens: int = Field(default=1024, gt=0)

    def tool_names(self) -> set[str]:
        return {tool.name for tool in self.tools}


class LlmResponse(BaseModel):
    """The model's answer: final `text`, or `tool_calls` for the workflow to run, plus where it came from.

    `fallback_from`/`fallback_reason` are set when the primary provider failed and another answered, so the
    audit trail shows which model actually decided a payment.
    """

    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    provider: ProviderName
    model: str
    fallback_from: str | None = None
    fallback_reason: str | None = None
    usage: dict[str, int] = Field(default_factory=dict)
    understood: bool = True  # the offline planner sets False when it answers with help instead of acting

    def assistant_message(self) -> ChatMessage:
        """This answer as the assistant turn to append to the conversation before running its tool calls."""
        return ChatMessage(role="assistant", text=self.text, tool_calls=list(self.tool_calls))
