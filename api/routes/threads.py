"""Threads: a user's conversations with the agent. Create, list (newest first), read messages, archive, delete.

Every query is scoped to the caller's tenant AND user: another user's thread, in this tenant or any other,
answers 404 exactly like a missing one, so ids reveal nothing. Archive is a soft delete (hidden from the
default list, kept for audit, no new runs); delete removes the thread, its messages, runs and events.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from api.authz import Role, allow
from api.deps import Deps, deps
from api.errors import ApiError
from api.run_service import create_thread, owned_thread
from paygent.db.accounts import Principal
from paygent.db.agent_schema import agent_runs, messages, threads
from paygent.db.agent_transcript import message_view
from paygent.db.audit import append_audit
from paygent.db.schema import BIGINT_MAX
from paygent.domain.agent_run import RUN_TERMINAL
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.errors import InvalidInput
from paygent.domain.text import SafeText

router = APIRouter(prefix="/v1/threads", tags=["threads"])
RUNNER = allow(Role.requester, agents=True)  # threads hold agent runs: whoever may start a run


class ThreadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: SafeText | None = Field(None, min_length=1, max_length=200)


async def thread_or_404(conn: AsyncConnection, who: Principal, thread_id: str, *, lock: bool = False):
    row = await owned_thread(conn, who, thread_id, lock=lock)
    if row is None:
        raise ApiError(404, "not_found", "thread not found")
    return row


def thread_view(row) -> dict:
    return {
        "id": str(row["id"]),
        "title": row["title"],
        "archived": row["archived_at"] is not None,
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "archived_at": row["archived_at"].isoformat() if row["archived_at"] else None,
    }


def _encode_cursor(row) -> str:
    return base64.urlsafe_b64encode(f"{row['created_at'].isoformat()}|{row['id']}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, _, tid = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(tid)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor", "is not a cursor this API returned") from None


@router.post("", status_code=201)
async def create(body: ThreadCreate | None = None, who: Principal = Depends(RUNNER), d: Deps = Depends(deps)):
    async with d.engine.begin() as conn:
        thread_id = await create_thread(conn, who, (body.title if body and body.title else "New thread"))
        row = await thread_or_404(conn, who, str(thread_id))
    return thread_view(row)


@router.get("")
async def list_threads(
    who: Principal = Depends(RUNNER),
    d: Deps = Depends(deps),
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=200),
    include_archived: bool = Query(False),
):
    """Newest first; `next_cursor` continues after the last thread of this page (stable under inserts)."""
    query = sa.select(threads).where(threads.c.tenant_id == who.tenant_id, threads.c.user_id == who.user_id)
    if not include_archived:
        query = query.where(threads.c.archived_at.is_(None))
    if cursor:
        created, tid = _decode_cursor(cursor)
        query = query.where(sa.tuple_(threads.c.created_at, threads.c.id) < sa.tuple_(created, tid))
    query = query.order_by(threads.c.created_at.desc(), threads.c.id.desc()).limit(limit + 1)
    async with d.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    page = rows[:limit]
    return {
        "threads": [thread_view(r) for r in page],
        "next_cursor": _encode_cursor(page[-1]) if len(rows) > limit else None,
    }


@router.get("/{thread_id}")
async def get_thread(thread_id: str, who: Principal = Depends(RUNNER), d: Deps = Depends(deps)):
    async with d.engine.connect() as conn:
        return thread_view(await thread_or_404(conn, who, thread_id))


@router.get("/{thread_id}/messages")
async def list_messages(
    thread_id: str,
    who: Principal = Depends(RUNNER),
    d: Deps = Depends(deps),
    limit: int = Query(50, ge=1, le=200),
    after: int = Query(0, ge=0, le=BIGINT_MAX),  # messages.position
):
    """Oldest first; `next_after` is the position to pass as `after` for the next page."""
    async with d.engine.connect() as conn:
        thread = await thread_or_404(conn, who, thread_id)
        rows = (
            (
                await conn.execute(
                    sa.select(messages)
                    .where(
                        messages.c.thread_id == thread["id"],
                        messages.c.position > after,
                    )
                    .order_by(messages.c.position)
                    .limit(limit + 1)
                )
            )
            .mappings()
            .all()
        )
    page = rows[:limit]
    return {
        "messages": [message_view(r) for r in page],
        "next_after": int(page[-1]["position"]) if len(rows) > limit else None,
    }


@router.post("/{thread_id}/archive")
async def archive(thread_id: str, who: Principal = Depends(RUNNER), d: Deps = Depends(deps)):
    async with d.engine.begin() as conn:
        row = await thread_or_404(conn, who, thread_id, lock=True)
        if row["archived_at"] is None:
            await conn.execute(
                threads.update()
                .where(threads.c.id == row["id"])
                .values(archived_at=sa.func.now(), updated_at=sa.func.now())
            )
            await append_audit(
                conn,
                tenant_id=who.tenant_id,
                actor=who.actor,
                channel=Channel.api,
                action=AuditAction.thread_archived,
                subject_type=AuditSubject.thread,
                subject_id=str(row["id"]),
            )
        row = await thread_or_404(conn, who, thread_id)
    return thread_view(row)


@router.delete("/{thread_id}", status_code=204)
async def delete(thread_id: str, who: Principal = Depends(RUNNER), d: Deps = Depends(deps)):
    async with d.engine.begin() as conn:
        row = await thread_or_404(conn, who, thread_id, lock=True)
        active = await conn.scalar(
            sa.select(agent_runs.c.id)
            .where(agent_runs.c.thread_id == row["id"], agent_runs.c.status.not_in(RUN_TERMINAL))
            .limit(1)
        )
        if active is not None:
            raise ApiError(409, "run_active", f"thread_id: run {active} is still active; cancel it first", "thread_id")
        await conn.execute(threads.delete().where(threads.c.id == row["id"]))  # cascades to messages and runs
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.actor,
            channel=Channel.api,
            action=AuditAction.thread_deleted,
            subject_type=AuditSubject.thread,
            subject_id=str(row["id"]),
            data={"title": row["title"]},
        )
    return Response(status_code=204)
