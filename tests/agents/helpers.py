"""Helpers for agent-run tests: start a run, read its Server-Sent Events, wait for it, serve an extra API."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from tests.api.helpers import auth, serve_api  # noqa: F401  (re-exported for the agent tests)

TERMINAL = ("completed", "failed", "cancelled")


async def start_run(http, dev: dict, message: str, user: str = "alice", **extra: Any) -> dict:
    r = await http.post("/v1/agent-runs", json={"message": message, **extra}, headers=auth(dev, user))
    assert r.status_code == 202, r.text
    return r.json()


async def sse_events(
    http,
    dev: dict,
    run_id: str,
    *,
    user: str = "alice",
    last_event_id: str | None = None,
    timeout: float = 60,
    on_event=None,
) -> list[dict]:
    """Every event the SSE endpoint sends until it closes the stream (it does at the terminal event)."""
    headers = auth(dev, user)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    events: list[dict] = []
    async with asyncio.timeout(timeout):
        async with http.stream("GET", f"/v1/agent-runs/{run_id}/events", headers=headers) as r:
            assert r.status_code == 200, await r.aread()
            assert r.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            async for line in r.aiter_lines():
                if line == "":
                    if "data" in fields:
                        event = json.loads(fields["data"])
                        assert fields["id"] == str(event["seq"]) and fields["event"] == event["type"]
                        events.append(event)
                        if on_event is not None:
                            await on_event(event)
                    fields = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value
    return events


async def wait_run(
    http, dev: dict | None, run_id: str, *, user: str = "alice", timeout: float = 60, headers: dict | None = None
) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await http.get(f"/v1/agent-runs/{run_id}", headers=headers or auth(dev, user))
        assert r.status_code == 200, r.text
        if r.json()["status"] in TERMINAL:
            return r.json()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"run still {r.json()['status']} after {timeout}s")
        await asyncio.sleep(0.1)


async def new_requester(app_settings, tenant_id: str) -> str:
    """A fresh user with only the requester role in the tenant; returns the API key."""
    import uuid as _uuid

    from paygent.db.accounts import create_user
    from paygent.db.engine import get_engine
    from paygent.db.tenancy import tenant_transaction

    async with tenant_transaction(get_engine(app_settings.owner_database_url()), tenant_id) as conn:
        _, key = await create_user(conn, _uuid.UUID(tenant_id), f"req-{_uuid.uuid4().hex[:8]}", ["requester"])
    return key


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


async def paygent_run(tmp_path, dev: dict, api_url: str, *args: str) -> tuple[int, str, str]:
    """`paygent run ARGS` as a real subprocess against `api_url`, with a dev.json holding the dev keys."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dev.json").write_text(
        json.dumps({"api_url": api_url, "users": dev["users"], "agents": dev.get("agents", {})})
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "paygent.cli",
        "run",
        *args,
        env={**os.environ, "PAYGENT_HOME": str(home)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()
