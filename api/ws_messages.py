"""The WebSocket channel's client messages (`GET /v1/ws`): one pydantic model each, told apart by `type`.

`parse_message` turns a text frame into one of them or raises `BadMessage` naming the field and the reason
(and echoing the client's `ref`, so it can match the error to what it sent). Nothing here does I/O.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from paygent import strict_json
from paygent.db.schema import INTEGER_MAX
from paygent.domain.errors import InvalidInput
from paygent.domain.text import SafeText, unstorable
from workflows import agent_types as at

MAX_FRAME_CHARS = 64 * 1024


class BadMessage(InvalidInput):
    def __init__(self, field: str, reason: str, ref: str | None = None) -> None:
        super().__init__(field, reason)
        self.ref = ref


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: SafeText | None = Field(None, max_length=100, description="echoed in the answers to this message")


class Auth(_Message):
    """The first message, when the client cannot send an `Authorization` header (browsers)."""

    type: Literal["auth"]
    api_key: SafeText = Field(min_length=1, max_length=200)


class _RunRequest(_Message):
    message: SafeText = Field(min_length=1, max_length=8_000)
    agent_id: SafeText | None = None
    wallet_id: SafeText | None = None
    max_steps: int = Field(at.DEFAULT_MAX_STEPS, ge=1, le=at.MAX_MAX_STEPS)


class StartAgent(_RunRequest):
    """Start an agent run (a new thread, or `thread_id` to continue one)."""

    type: Literal["start_agent"]
    thread_id: SafeText | None = None


class UserMessage(_RunRequest):
    """Continue a thread: the next user message, as a new run on it."""

    type: Literal["user_message"]
    thread_id: SafeText


class Chat(_RunRequest):
    """A turn without tools: the model answers, nothing is paid or fetched."""

    type: Literal["chat"]
    thread_id: SafeText | None = None


class Cancel(_Message):
    type: Literal["cancel"]
    run_id: SafeText


class Resume(_Message):
    """Follow a run again after a dropped socket: what came after `last_seq` is replayed, then it goes live."""

    type: Literal["resume"]
    run_id: SafeText
    last_seq: int = Field(ge=0, le=INTEGER_MAX)  # agent_run_events.seq


class Ping(_Message):
    type: Literal["ping"]


class SubscribeMemory(_Message):
    """Follow changes to a memory scope the principal may read (`memory_changed` events)."""

    type: Literal["subscribe_memory"]
    scope: SafeText | None = Field(None, max_length=600)


ClientMessage = Annotated[
    Auth | StartAgent | UserMessage | Chat | Cancel | Resume | Ping | SubscribeMemory, Field(discriminator="type")
]
TYPES = ("auth", "start_agent", "user_message", "chat", "cancel", "resume", "ping", "subscribe_memory")
_ADAPTER: TypeAdapter[Any] = TypeAdapter(ClientMessage)


def parse_message(text: str) -> Any:
    """One client message, or `BadMessage` naming the first field that is wrong."""
    if len(text) > MAX_FRAME_CHARS:
        raise BadMessage("frame", f"over {MAX_FRAME_CHARS} characters")
    try:
        data = strict_json.loads(text)
    except strict_json.DuplicateKey as exc:
        field = exc.key[:100] if not unstorable(exc.key) else "frame"
        raise BadMessage(field, "appears twice in one JSON object (send each key once)") from None
    except json.JSONDecodeError as exc:
        raise BadMessage("frame", f"not JSON ({exc.msg} at character {exc.pos})") from None
    except ValueError:  # valid JSON that Python will not read: an integer over 4300 digits
        raise BadMessage("frame", "not JSON that can be read (a number with too many digits)") from None
    if not isinstance(data, dict):
        raise BadMessage("frame", "must be a JSON object with a `type`")
    ref = data.get("ref") if isinstance(data.get("ref"), str) and not unstorable(data["ref"]) else None
    # (a ref with NUL or an unpaired surrogate is not echoed: it is refused below, and could not be sent back)
    kind = data.get("type")
    if kind not in TYPES:
        reason = "required" if kind is None else f"unknown message type {str(kind)[:40]!r}"
        raise BadMessage("type", f"{reason}; one of {', '.join(TYPES)}", ref)
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"] if p != kind]
        raise BadMessage(".".join(loc) or "frame", first["msg"], ref) from None
