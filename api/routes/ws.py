"""`GET /v1/ws`: agent runs over one WebSocket: start, continue, chat, cancel, and follow several runs at once.

Authentication is the HTTP API's (`api.deps.authenticate_key`: the same key lookup and the same rate limits,
failed attempts included), from the `Authorization: Bearer` header or, failing that, a first `auth` message.
The principal's tenant scopes every transaction of the socket. Starting or following runs needs what the HTTP
routes need (`requester`, or an agent key); a refusal is an `error` message and the socket stays open. A socket
sees only its principal's runs (`run_or_404`, as over HTTP). Any principal may `subscribe_memory` to a memory
scope it may read and then gets `memory_changed` events (api/memory_feed.py).

Events come from `api.run_events.follow_run` (Postgres replay, then the Redis live feed), the follower the SSE
endpoint uses, so `resume` with the last sequence number seen loses and repeats nothing. Memory per socket is
bounded: replies and events wait in one queue of `OUTBOX` messages; when it is full the followers stop reading
(they continue from Postgres, by sequence number, once the client reads again), and a client that takes no
message for `SEND_TIMEOUT` seconds is closed with code 4408 (resume on a new socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError

from api import ws_messages as m
from api.authz import Role, require
from api.deps import Deps, authenticate_key, bearer_key
from api.errors import ApiError
from api.memory_feed import follow_scope
from api.memory_service import place_for
from api.ratelimit import client_address
from api.run_events import follow_run
from api.run_service import AgentRunCreate, request_cancel, run_or_404, start_run
from paygent.db.accounts import Principal
from paygent.db.agent_schema import agent_runs
from paygent.domain.agent_run import RUN_TERMINAL
from paygent.domain.errors import InvalidInput
from paygent.memory.access import Access

router = APIRouter(tags=["websocket"])
log = logging.getLogger("paygent.api.ws")
PATH = "/v1/ws"
AUTH_TIMEOUT = 10.0  # seconds to send the `auth` message when there is no Authorization header
OUTBOX = 256  # messages waiting for a slow client, per socket
MAX_FOLLOWED = 20  # runs followed at once on one socket
SEND_TIMEOUT = 30.0
CLOSE_UNAUTHENTICATED, CLOSE_RATE_LIMITED, CLOSE_SLOW_READER = 4401, 4429, 4408


def error_message(exc: Exception, ref: str | None = None, **extra: Any) -> dict[str, Any]:
    if isinstance(exc, ApiError):
        code, field, text = exc.code, exc.field, exc.message
    elif isinstance(exc, InvalidInput):
        code, field, text = "invalid_message", exc.field, str(exc)
    else:
        code, field, text = "internal_error", None, "internal error; see the server log"
    return {"type": "error", "ref": ref, "code": code, "field": field, "message": text, **extra}


@router.websocket(PATH)
async def run_channel(websocket: WebSocket) -> None:
    await websocket.accept()
    metrics = websocket.app.state.metrics
    metrics.ws_opened.inc()
    with metrics.ws_open.track_inprogress():
        d: Deps = websocket.app.state.deps
        who = await _authenticate(websocket, d)
        if who is not None:
            await RunChannel(websocket, d, who).serve()


async def _authenticate(websocket: WebSocket, d: Deps) -> Principal | None:
    """The principal, or None after telling the client why and closing (4401, or 4429 when rate limited)."""
    header = websocket.headers.get("authorization")
    key, field, bad, ref = None, "api_key", None, None
    if header is not None:
        key, field = bearer_key(header), "Authorization"
    else:
        try:
            frame = await asyncio.wait_for(websocket.receive(), AUTH_TIMEOUT)
        except TimeoutError:
            frame = None
        if frame is not None and frame["type"] == "websocket.disconnect":
            return None
        try:
            if frame is None:
                raise m.BadMessage(
                    "api_key", f"no Authorization header and no `auth` message within {AUTH_TIMEOUT:.0f} s"
                )
            first = m.parse_message(frame.get("text") or "")
            ref = first.ref
            if not isinstance(first, m.Auth):
                raise m.BadMessage(
                    "type",
                    'the first message must be {"type": "auth", "api_key": ...} '
                    "(or connect with an Authorization header)",
                    ref,
                )
            key = first.api_key
        except m.BadMessage as exc:
            bad, ref = exc, exc.ref
    try:  # a missing or malformed key counts as a failed authentication, as over HTTP
        return await authenticate_key(d, client_address(websocket), key, field=field)
    except ApiError as exc:
        if exc.status == 429:
            websocket.app.state.metrics.rate_limited.labels(exc.cause or exc.code).inc()
        told = error_message(bad, ref, code="unauthenticated") if bad and exc.status == 401 else error_message(exc, ref)
        with contextlib.suppress(Exception):
            await websocket.send_json(told)
            await websocket.close(CLOSE_RATE_LIMITED if exc.status == 429 else CLOSE_UNAUTHENTICATED, exc.code)
        return None


class RunChannel:
    """One authenticated socket: reads client messages, runs them, and sends replies and events in order."""

    def __init__(self, websocket: WebSocket, d: Deps, who: Principal) -> None:
        self.ws, self.d, self.who = websocket, d, who
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(OUTBOX)
        self.followed: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.memory_feeds: dict[str, asyncio.Task[None]] = {}

    async def serve(self) -> None:
        await self.outbox.put(
            {
                "type": "ready",
                "principal": self.who.actor,
                "limits": {
                    "outbox": OUTBOX,
                    "max_followed_runs": MAX_FOLLOWED,
                    "max_frame_chars": m.MAX_FRAME_CHARS,
                    "send_timeout_seconds": SEND_TIMEOUT,
                },
            }
        )
        tasks = [asyncio.create_task(self._receive_all()), asyncio.create_task(self._send_all())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            feeds = [*self.followed.values(), *self.memory_feeds.values()]
            for task in [*tasks, *feeds]:
                task.cancel()
            await asyncio.gather(*tasks, *feeds, return_exceptions=True)

    async def _receive_all(self) -> None:
        while True:
            frame = await self.ws.receive()
            if frame["type"] == "websocket.disconnect":
                return
            text = frame.get("text")
            if text is None:
                await self.outbox.put(
                    error_message(m.BadMessage("frame", "must be a text frame holding a JSON object, not binary"))
                )
                continue
            await self._handle(text)

    async def _send_all(self) -> None:
        while True:
            message = await self.outbox.get()
            try:
                await asyncio.wait_for(self.ws.send_json(message), SEND_TIMEOUT)
            except TimeoutError:
                log.warning("closing a slow WebSocket reader (%s)", self.who.actor)
                self.ws.app.state.metrics.ws_dropped.inc()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        self.ws.close(CLOSE_SLOW_READER, "slow reader: resume from your last seq on a new socket"), 2
                    )
                return
            except Exception:  # the client went away (disconnect, closed transport)
                return

    async def _handle(self, text: str) -> None:
        ref = run_id = None
        try:
            msg = m.parse_message(text)
            ref, run_id = msg.ref, getattr(msg, "run_id", None)
            if isinstance(msg, m.Ping):
                await self.outbox.put({"type": "pong", "ref": ref})
                return
            if isinstance(msg, m.Auth):
                raise m.BadMessage("type", "already authenticated", ref)
            await self.d.limits.check_request(
                self.d.engine,
                key_id=str(self.who.user_id),
                address=client_address(self.ws),
                tenant_id=str(self.who.tenant_id),
                actor=self.who.actor,
            )
            if isinstance(msg, m.SubscribeMemory):  # any principal, for scopes it may read (as /v1/memory)
                await self._subscribe_memory(msg)
                return
            require(self.who, Role.requester, agents=True)  # as the HTTP agent-run routes
            if isinstance(msg, m.Cancel):
                await request_cancel(self.d, self.who, msg.run_id, transport="websocket")
                await self.outbox.put({"type": "cancelling", "ref": ref, "run_id": msg.run_id})
            elif isinstance(msg, m.Resume):
                await self._resume(msg)
            else:
                await self._start(msg)
        except (ApiError, InvalidInput) as exc:
            if isinstance(exc, m.BadMessage):
                ref = exc.ref
            if isinstance(exc, ApiError) and exc.field is None and run_id is not None:
                exc.field = "run_id"  # "agent run not found" and the like are about the run named
            await self.outbox.put(error_message(exc, ref, **({"run_id": run_id} if run_id else {})))
        except Exception as exc:
            log.exception("WebSocket message failed")
            await self.outbox.put(error_message(exc, ref))

    async def _start(self, msg: m.StartAgent | m.UserMessage | m.Chat) -> None:
        self._check_room()
        try:
            body = AgentRunCreate(
                message=msg.message,
                thread_id=msg.thread_id,
                wallet_id=msg.wallet_id,
                agent_id=msg.agent_id,
                max_steps=msg.max_steps,
                tools=not isinstance(msg, m.Chat),
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidInput(".".join(map(str, first["loc"])) or "message", first["msg"]) from None
        started = await start_run(self.d, self.who, body, transport="websocket")
        await self.outbox.put(
            {
                "type": "run_started",
                "ref": msg.ref,
                "run_id": started["id"],
                "thread_id": started["thread_id"],
                "message_id": started["message_id"],
                "status": started["status"],
                "tools": body.tools,
            }
        )
        self._follow(uuid.UUID(started["id"]), 0)

    async def _resume(self, msg: m.Resume) -> None:
        async with self.d.engine.connect() as conn:
            row = await run_or_404(conn, self.who, msg.run_id)
        if row["id"] not in self.followed:
            self._check_room()
        await self.outbox.put(
            {
                "type": "resuming",
                "ref": msg.ref,
                "run_id": str(row["id"]),
                "after_seq": msg.last_seq,
                "status": row["status"],
            }
        )
        self._follow(row["id"], msg.last_seq)

    async def _subscribe_memory(self, msg: m.SubscribeMemory) -> None:
        place = await place_for(self.d, self.who, msg.scope, Access.read)
        if place.written in self.memory_feeds:
            raise ApiError(409, "conflict", f"scope: already following {place.written}", "scope")
        if len(self.memory_feeds) >= MAX_FOLLOWED:
            raise ApiError(429, "too_many_followed", f"scope: at most {MAX_FOLLOWED} memory scopes per socket", "scope")
        self.memory_feeds[place.written] = asyncio.create_task(follow_scope(self.d, self.who, place, self.outbox.put))
        await self.outbox.put({"type": "memory_subscribed", "ref": msg.ref, "scope": place.written})

    def _check_room(self) -> None:
        if len(self.followed) >= MAX_FOLLOWED:
            raise ApiError(
                429,
                "too_many_runs",
                f"this socket already follows {MAX_FOLLOWED} runs; wait for one to finish or open another socket",
            )

    def _follow(self, run_id: uuid.UUID, after: int) -> None:
        earlier = self.followed.pop(run_id, None)
        if earlier is not None:  # a resume of a run this socket follows: start over from the client's seq
            earlier.cancel()
        self.followed[run_id] = asyncio.create_task(self._forward(run_id, after))

    async def _forward(self, run_id: uuid.UUID, after: int) -> None:
        """Put the run's events on the outbox (waiting while it is full), then the final `run_finished`."""
        last = after
        try:
            async for event in follow_run(self.d, run_id, after):
                if event is not None:
                    await self.outbox.put(event)
                    last = event["seq"]
            async with self.d.engine.connect() as conn:
                status = await conn.scalar(sa.select(agent_runs.c.status).where(agent_runs.c.id == run_id))
            if status in RUN_TERMINAL:
                await self.outbox.put(
                    {"type": "run_finished", "run_id": str(run_id), "status": status, "last_seq": last}
                )
            else:  # the follower's time limit: the run goes on
                await self.outbox.put(
                    {"type": "resume_needed", "run_id": str(run_id), "status": status, "last_seq": last}
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("following run %s failed", run_id)
            await self.outbox.put(
                {
                    "type": "error",
                    "code": "follow_failed",
                    "field": "run_id",
                    "ref": None,
                    "run_id": str(run_id),
                    "last_seq": last,
                    "message": f"following the run stopped; resume with last_seq {last}",
                }
            )
        finally:
            if self.followed.get(run_id) is asyncio.current_task():
                del self.followed[run_id]
