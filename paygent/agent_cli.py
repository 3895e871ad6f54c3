"""`paygent run "pay 5 USDC to 0x..."`: start an agent run and follow its events live, over the SSE endpoint.

It uses only what a client has: `.paygent/dev.json` (API URL and the dev users' keys; `--as alice` by default).
A dropped stream is resumed with `Last-Event-ID`, so no event is shown twice or lost. Ctrl-C detaches and
leaves the run going (it may be waiting for a human approval); `paygent run --cancel <run id>` cancels it.
Exit status: 0 when the run completes, 1 when it fails or is cancelled, 2 for a usage or connection problem.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx
import typer

from paygent.paths import dev_json_path

TERMINAL_EVENTS = ("agent_completed", "agent_failed")
RECONNECTS = 5


def _exit(code: int) -> None:
    """Temporal's SDK can crash at interpreter exit (sdk-python#300): flush and leave without teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _client(as_user: str, api_url: str | None) -> httpx.AsyncClient:
    path = dev_json_path()
    if not path.exists():
        raise SystemExit(f"{path} not found: run `paygent stack up` first")
    dev = json.loads(path.read_text())
    user = dev.get("users", {}).get(as_user)
    if not user:
        raise SystemExit(f"no user {as_user!r} in {path} (known: {', '.join(dev.get('users', {}))})")
    return httpx.AsyncClient(base_url=api_url or dev["api_url"], timeout=httpx.Timeout(30, read=60),
                             headers={"Authorization": f"Bearer {user['api_key']}"})


def describe(event: dict) -> str:
    """One line of progress per event."""
    data, kind = event["data"], event["type"]
    if kind == "agent_started":
        return f"run {event['run_id']} started (thread {data['thread_id']})"
    if kind == "agent_thinking" and data.get("status") == "started":
        return f"step {data['step']}: thinking..."
    if kind == "agent_thinking":
        line = f"step {data['step']}: {data['provider']}/{data['model']}"
        if data.get("fallback_from"):
            line += f" (fallback from {data['fallback_from']}: {data['fallback_reason']})"
        return line + (f" -> calls {', '.join(data['tool_calls'])}" if data.get("tool_calls") else " -> answers")
    if kind == "tool_executing":
        return f"  running {data['tool']} {json.dumps(data['arguments'])}"
    if kind == "tool_completed":
        return f"  {data['tool']} {'done' if data['ok'] else 'FAILED'}: {data['result']}"
    if kind == "approval_requested":
        return f"  waiting for approval of {data['tool']} (payment {data['payment_id']}, {data['status']})"
    if kind == "approval_decided":
        return f"  approval {data['decision']} (payment {data['payment_id']} now {data['status']})"
    if kind == "agent_completed":
        return f"\n{data['answer']}"
    if kind == "agent_failed":
        return f"run {data['status']}: {data['error']}"
    return f"{kind}: {json.dumps(data)}"


async def follow(http: httpx.AsyncClient, run_id: str, *, raw: bool = False) -> int:
    """Print events until the terminal one; reconnect (resuming after the last id) if the stream drops."""
    last, failures = 0, 0
    while failures <= RECONNECTS:
        try:
            async with http.stream("GET", f"/v1/agent-runs/{run_id}/events",
                                   headers={"Last-Event-ID": str(last)}) as r:
                if r.status_code != 200:
                    typer.echo(f"cannot follow run {run_id}: HTTP {r.status_code} {await r.aread()!r}", err=True)
                    return 2
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[len("data: "):])
                    last = event["seq"]
                    typer.echo(json.dumps(event) if raw else describe(event),
                               err=event["type"] == "agent_failed" and not raw)
                    if event["type"] in TERMINAL_EVENTS:
                        return 0 if event["type"] == "agent_completed" else 1
        except httpx.TransportError as exc:
            typer.echo(f"(stream interrupted: {type(exc).__name__}; resuming after event {last})", err=True)
        failures += 1
        await asyncio.sleep(min(2**failures, 10))
    typer.echo(f"gave up following run {run_id}; see GET /v1/agent-runs/{run_id}", err=True)
    return 2


async def _start(http: httpx.AsyncClient, message: str, thread: str | None, raw: bool) -> int:
    body = {"message": message, **({"thread_id": thread} if thread else {})}
    r = await http.post("/v1/agent-runs", json=body)
    if r.status_code != 202:
        typer.echo(f"run refused: HTTP {r.status_code} {r.text}", err=True)
        return 2
    run_id = r.json()["id"]
    try:
        return await follow(http, run_id, raw=raw)
    except asyncio.CancelledError:
        typer.echo(f"\ndetached; the run continues. Cancel it with: paygent run --cancel {run_id}", err=True)
        return 130


async def _cancel(http: httpx.AsyncClient, run_id: str) -> int:
    r = await http.post(f"/v1/agent-runs/{run_id}/cancel")
    if r.status_code != 202:
        typer.echo(f"cancel refused: HTTP {r.status_code} {r.text}", err=True)
        return 1
    typer.echo(f"cancelling run {run_id}")
    code = await follow(http, run_id)
    return 0 if code in (0, 1) else code  # the run ended (cancelled, or done before the cancel landed)


def run(message: str = typer.Argument(None, help='What the agent should do, e.g. "pay 5 USDC to 0x..."'),
        as_user: str = typer.Option("alice", "--as", help="A user from dev.json"),
        thread: str = typer.Option(None, "--thread", help="Continue this thread instead of starting one"),
        cancel: str = typer.Option(None, "--cancel", help="Cancel this run id instead of starting one"),
        raw: bool = typer.Option(False, "--json", help="Print each event as a JSON line"),
        api_url: str = typer.Option(None, "--api-url", help="Defaults to api_url in dev.json")) -> None:
    """Start an agent run and stream its progress; exit 0 if it completes, 1 if it fails or is cancelled.
    Role: requester, or an agent key (`--as shopper`)."""
    if not message and not cancel:
        typer.echo('say what to do, e.g. paygent run "balance" (or --cancel RUN_ID)', err=True)
        _exit(2)

    async def main() -> int:
        async with _client(as_user, api_url) as http:
            return await (_cancel(http, cancel) if cancel else _start(http, message, thread, raw))

    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:
        code = 130
    except (SystemExit, httpx.HTTPError) as exc:
        typer.echo(str(exc) if isinstance(exc, SystemExit) else f"cannot reach the API: {exc}", err=True)
        code = 2
    _exit(code)
