"""Agent runs: start one on a thread, read it, cancel it, and follow its events as Server-Sent Events.

Starting, reading and cancelling are api/run_service.py's, which the WebSocket channel uses too.

Events: `GET /v1/agent-runs/{id}/events` follows the run from `Last-Event-ID` (or `?after=`) with
`api.run_events.follow_run`, the follower the WebSocket channel shares. `id:` is the event's sequence number,
so a client resumes exactly.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse

from api.approval_http import channel
from api.authz import Role, allow
from api.deps import Deps, deps
from api.run_events import follow_run
from api.run_service import AgentRunCreate, request_cancel, run_or_404, start_run
from paygent.db.accounts import Principal
from paygent.db.schema import INTEGER_MAX
from paygent.domain.channels import Channel
from paygent.domain.errors import InvalidInput
from paygent.settings import Settings

router = APIRouter(prefix="/v1/agent-runs", tags=["agent runs"])


def run_view(row, settings: Settings) -> dict:
    iso = lambda v: v.isoformat() if v else None  # noqa: E731
    return {
        "id": str(row["id"]),
        "thread_id": str(row["thread_id"]),
        "message_id": str(row["message_id"]),
        "status": row["status"],
        "steps": row["steps"],
        "max_steps": row["max_steps"],
        "answer": row["answer"],
        "error": row["error"],
        "wallet_id": str(row["wallet_id"]) if row["wallet_id"] else None,
        "workflow_id": row["workflow_id"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "finished_at": iso(row["finished_at"]),
        "temporal_ui_url": f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{row['workflow_id']}",
    }


@router.post("", status_code=202)
async def create_run(
    body: AgentRunCreate, who: Principal = Depends(allow(Role.requester, agents=True)), d: Deps = Depends(deps)
):
    return JSONResponse(await start_run(d, who, body), status_code=202)


@router.get("/{run_id}")
async def get_run(run_id: str, who: Principal = Depends(allow(Role.requester, agents=True)), d: Deps = Depends(deps)):
    async with d.engine.connect() as conn:
        return run_view(await run_or_404(conn, who, run_id), d.settings)


@router.post("/{run_id}/cancel", status_code=202)
async def cancel_run(
    run_id: str,
    who: Principal = Depends(allow(Role.requester, agents=True)),
    d: Deps = Depends(deps),
    via: Channel = Depends(channel),
):
    return await request_cancel(d, who, run_id, via=via)


def _sse(event: dict | None) -> bytes:
    if event is None:
        return b": keepalive\n\n"
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def _sse_stream(d: Deps, run_id: uuid.UUID, after: int) -> AsyncIterator[bytes]:
    async for event in follow_run(d, run_id, after):
        yield _sse(event)


@router.get("/{run_id}/events")
async def events(
    run_id: str,
    who: Principal = Depends(allow(Role.requester, agents=True)),
    d: Deps = Depends(deps),
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    after: int | None = Query(None, ge=0, le=INTEGER_MAX),  # agent_run_events.seq
):
    async with d.engine.connect() as conn:
        row = await run_or_404(conn, who, run_id)
    start = after or 0
    if last_event_id is not None:
        text = last_event_id.strip()
        # ASCII digits only (str.isdigit also takes other scripts' digits), and no larger than the column
        if not (text.isascii() and text.isdigit() and len(text) <= 10 and int(text) <= INTEGER_MAX):
            raise InvalidInput("Last-Event-ID", "must be an event id (a sequence number) from this stream")
        start = int(text)
    return StreamingResponse(
        _sse_stream(d, row["id"], start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
