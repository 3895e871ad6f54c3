"""The transcript of a thread: writing messages once, and reading them back as an LLM conversation.

Every write by a workflow activity carries a `dedupe_key`, so a retried activity finds its earlier row instead
of adding a second one. Reading repairs what an interrupted run can leave behind (an assistant tool call whose
result never arrived because the run was cancelled): providers refuse such a conversation outright, so the
missing result is filled in as "not run" rather than letting one cancelled run break the thread for good.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.agent_schema import messages
from paygent.llm.types import ChatMessage, ToolCall

MAX_CONTEXT_MESSAGES = 200
NOT_RUN = '{"error": "not run: the run ended before this tool call finished"}'


async def insert_message(
    conn: AsyncConnection,
    *,
    thread_id: uuid.UUID,
    tenant_id: uuid.UUID,
    run_id: uuid.UUID | None,
    role: str,
    text: str | None,
    tool_calls: list[ToolCall] | None = None,
    tool_call_id: str | None = None,
    tool_name: str | None = None,
    dedupe_key: str | None = None,
    message_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Insert one message; with a `dedupe_key` already used, return the id stored the first time."""
    new_id = message_id or uuid.uuid4()
    inserted = await conn.scalar(
        pg_insert(messages)
        .values(
            id=new_id,
            thread_id=thread_id,
            tenant_id=tenant_id,
            run_id=run_id,
            role=role,
            text=text,
            tool_calls=[c.model_dump(mode="json") for c in tool_calls or []],
            tool_call_id=tool_call_id,
            tool_name=tool_name,
            dedupe_key=dedupe_key,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(messages.c.id)
    )
    if inserted is not None:
        return inserted
    # nothing inserted: the conflict was on `dedupe_key`, so the first message with it is there
    return (await conn.execute(sa.select(messages.c.id).where(messages.c.dedupe_key == dedupe_key))).scalar_one()


def to_chat(row: Any) -> ChatMessage:
    calls = [ToolCall.model_validate(c) for c in row["tool_calls"] or []]
    if row["role"] == "tool":
        return ChatMessage(role="tool", text=row["text"] or "", tool_call_id=row["tool_call_id"])
    return ChatMessage(role=row["role"], text=row["text"], tool_calls=calls if row["role"] == "assistant" else [])


def repair(chat: list[ChatMessage]) -> list[ChatMessage]:
    """Start at a user turn, and give every tool call a result right after the turn that asked for it."""
    while chat and chat[0].role != "user":
        chat = chat[1:]
    out: list[ChatMessage] = []
    pending: list[str] = []

    def close_pending() -> None:
        out.extend(ChatMessage.tool_result(call_id, NOT_RUN) for call_id in pending)
        pending.clear()

    for message in chat:
        if message.role == "tool":
            if message.tool_call_id in pending:
                pending.remove(message.tool_call_id)
                out.append(message)
            continue  # a result with no call before it cannot be sent
        close_pending()
        out.append(message)
        pending.extend(call.id for call in message.tool_calls)
    close_pending()
    return out


async def load_chat(
    conn: AsyncConnection, thread_id: uuid.UUID, limit: int = MAX_CONTEXT_MESSAGES
) -> list[ChatMessage]:
    """The thread's latest `limit` messages, oldest first, repaired for the provider."""
    rows = (
        (
            await conn.execute(
                sa.select(messages)
                .where(messages.c.thread_id == thread_id)
                .order_by(messages.c.position.desc())
                .limit(limit)
            )
        )
        .mappings()
        .all()
    )
    return repair([to_chat(r) for r in reversed(rows)])


def message_view(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "position": int(row["position"]),
        "role": row["role"],
        "text": row["text"],
        "tool_calls": row["tool_calls"] or [],
        "tool_call_id": row["tool_call_id"],
        "tool_name": row["tool_name"],
        "run_id": str(row["run_id"]) if row["run_id"] else None,
        "created_at": row["created_at"].isoformat(),
    }
