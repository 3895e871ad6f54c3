"""A WebSocket client for tests: the `websockets` package against the real API (`api_url` fixture)."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import Any

import websockets

TERMINAL_EVENTS = ("agent_completed", "agent_failed")


def ws_url(api_url: str) -> str:
    return api_url.replace("http://", "ws://", 1) + "/v1/ws"


@asynccontextmanager
async def connect(api_url: str, key: str | None, *, expect_ready: bool = True, **kw: Any):
    """A socket authenticated with `key` in the Authorization header (None: no header), past its `ready`."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else None
    async with websockets.connect(ws_url(api_url), additional_headers=headers, open_timeout=20, **kw) as ws:
        if expect_ready:
            ready = await recv(ws)
            assert ready["type"] == "ready", ready
        yield ws


async def send(ws, message: dict | str) -> None:
    await ws.send(message if isinstance(message, str) else json.dumps(message))


async def recv(ws, timeout: float = 30) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def until(ws, predicate, timeout: float = 60) -> list[dict]:
    """Every message up to and including the first one `predicate` accepts."""
    seen: list[dict] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await recv(ws, timeout)
            seen.append(msg)
            if predicate(msg):
                return seen


def finished(run_id: str):
    return lambda msg: msg["type"] == "run_finished" and msg["run_id"] == run_id


async def start(ws, message: str, *, timeout: float = 30, **extra: Any) -> str:
    """Start a run and return its id (the `run_started` answer comes before any of its events)."""
    await send(ws, {"type": "start_agent", "message": message, **extra})
    msg = await recv(ws, timeout)
    assert msg["type"] == "run_started", msg
    return msg["run_id"]


def events_of(messages: list[dict], run_id: str) -> list[dict]:
    return [m for m in messages if m.get("run_id") == run_id and "seq" in m]
