"""`paygent run "pay 5 USDC to 0x..."`: start an agent run and follow its events live, over the SSE endpoint.

It uses only what a client has: `.paygent/dev.json` (API URL and the dev users' keys; `--as alice` by default).
A dropped stream is resumed with `Last-Event-ID`, so no event is shown twice or lost. Ctrl-C detaches and
leaves the run going (it may be waiting for a human approval); `paygent run --cancel <run id>` cancels it.

Exit status, so scripts can trust it: 0 only when the run completed AND every paying tool call it made (`pay`,
`x402_fetch`, `swap`) succeeded; 1 when the run failed or was cancelled, a payment or swap was refused, rejected,
expired, cancelled or failed, or the planner did not understand the request; 2 for usage and connection problems.
`--json` prints the final state (the run, the exit code and why, the paying calls) as one JSON document.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass, field

import httpx
import typer

from paygent.domain.agent_run import TERMINAL_EVENTS
from paygent.paths import dev_json_path

PAYING_TOOLS = ("pay", "x402_fetch", "swap")  # a swap spends its input amount
RECONNECTS = 5
OK, FAILED, USAGE = 0, 1, 2


@dataclass
class Outcome:
    """What the events said: the exit code and why, and each paying tool call's result."""

    code: int = USAGE
    reason: str = "the run's events could not be followed to the end"
    payments: list[dict] = field(default_factory=list)

    def see(self, event: dict) -> None:
        data, kind = event["data"], event["type"]
        if kind == "tool_completed" and data.get("tool") in PAYING_TOOLS:
            try:
                result = json.loads(data.get("result") or "{}")
            except ValueError:
                result = {}
            self.payments.append(
                {
                    "tool": data["tool"],
                    "ok": data["ok"],
                    "payment_id": result.get("payment_id") or result.get("swap_id"),
                    "status": result.get("status"),
                    "reason": result.get("reason"),
                }
            )
        elif kind == "agent_failed":
            self.code, self.reason = FAILED, f"the run {data.get('status')}: {data.get('error')}"
        elif kind == "agent_completed":
            refused = [p for p in self.payments if not p["ok"]]
            if refused:
                p = refused[0]
                why = f" ({p['reason']})" if p["reason"] else ""
                self.code, self.reason = (
                    FAILED,
                    f"{p['tool']} did not succeed: {'swap' if p['tool'] == 'swap' else 'payment'} "
                    f"{p['payment_id']} is {p['status'] or 'not made'}{why}",
                )
            elif data.get("understood") is False:
                self.code, self.reason = FAILED, "the planner did not understand the request"
            else:
                self.code, self.reason = (
                    OK,
                    "completed" + (f"; {len(self.payments)} payment(s) succeeded" if self.payments else ""),
                )


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
    known = {**dev.get("agents", {}), **dev.get("users", {})}  # a person, or an agent's own key
    user = known.get(as_user)
    if not user:
        raise SystemExit(f"no user {as_user!r} in {path} (known: {', '.join(known)})")
    return httpx.AsyncClient(
        base_url=api_url or dev["api_url"],
        timeout=httpx.Timeout(30, read=60),
        headers={"Authorization": f"Bearer {user['api_key']}", "X-Paygent-Channel": "cli"},  # audited as `cli`
    )


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
        line = f"  waiting for approval of {data['tool']} (payment {data['payment_id']}, {data['status']})"
        if data.get("approvers"):
            line += f": {data['approvals_needed']} of {', '.join(data['approvers'])} by {data['approval_deadline']}" + (
                f", then a {data['timelock_seconds']} s time-lock" if data.get("timelock_seconds") else ""
            )
        return line
    if kind == "approval_progress":
        return (
            f"  {data['approver']} {data['decision']} ({data['approvals_had']} of {data['approvals_needed']}, "
            f"payment {data['payment_id']})"
        )
    if kind == "payment_time_locked":
        return f"  approved; payment {data['payment_id']} is time-locked until {data['until']}"
    if kind == "approval_decided":
        return f"  approval {data['decision']} (payment {data['payment_id']} now {data['status']})"
    if kind == "agent_completed":
        return f"\n{data['answer']}"
    if kind == "agent_failed":
        return f"run {data['status']}: {data['error']}"
    return f"{kind}: {json.dumps(data)}"


async def follow(http: httpx.AsyncClient, run_id: str, *, quiet: bool = False) -> Outcome:
    """Print events until the terminal one; reconnect (resuming after the last id) if the stream drops."""
    last, failures, outcome = 0, 0, Outcome()
    while failures <= RECONNECTS:
        try:
            async with http.stream("GET", f"/v1/agent-runs/{run_id}/events", headers={"Last-Event-ID": str(last)}) as r:
                if r.status_code != 200:
                    outcome.reason = f"cannot follow run {run_id}: HTTP {r.status_code} {(await r.aread())!r}"
                    typer.echo(outcome.reason, err=True)
                    return outcome
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[len("data: ") :])
                    last = event["seq"]
                    outcome.see(event)
                    if not quiet:
                        typer.echo(describe(event), err=event["type"] == "agent_failed")
                    if event["type"] in TERMINAL_EVENTS:
                        return outcome
        except httpx.TransportError as exc:
            typer.echo(f"(stream interrupted: {type(exc).__name__}; resuming after event {last})", err=True)
        failures += 1
        await asyncio.sleep(min(2**failures, 10))
    typer.echo(f"gave up following run {run_id}; see GET /v1/agent-runs/{run_id}", err=True)
    return outcome


async def _start(http: httpx.AsyncClient, message: str, thread: str | None, as_json: bool) -> int:
    body = {"message": message, **({"thread_id": thread} if thread else {})}
    r = await http.post("/v1/agent-runs", json=body)
    if r.status_code != 202:
        typer.echo(f"run refused: HTTP {r.status_code} {r.text}", err=True)
        return USAGE
    run_id = r.json()["id"]
    try:
        outcome = await follow(http, run_id, quiet=as_json)
    except asyncio.CancelledError:
        typer.echo(f"\ndetached; the run continues. Cancel it with: paygent run --cancel {run_id}", err=True)
        return 130
    if outcome.code == FAILED and not as_json:
        typer.echo(f"exit 1: {outcome.reason}", err=True)
    if as_json:
        final = await http.get(f"/v1/agent-runs/{run_id}")
        typer.echo(
            json.dumps(
                {
                    "run": final.json() if final.status_code == 200 else {"id": run_id},
                    "exit_code": outcome.code,
                    "reason": outcome.reason,
                    "payments": outcome.payments,
                },
                indent=2,
            )
        )
    return outcome.code


async def _cancel(http: httpx.AsyncClient, run_id: str) -> int:
    r = await http.post(f"/v1/agent-runs/{run_id}/cancel")
    if r.status_code != 202:
        typer.echo(f"cancel refused: HTTP {r.status_code} {r.text}", err=True)
        return 1
    typer.echo(f"cancelling run {run_id}")
    outcome = await follow(http, run_id)
    return OK if outcome.code in (OK, FAILED) else outcome.code  # the run ended (cancelled, or done before)


def run(
    message: str = typer.Argument(None, help='What the agent should do, e.g. "pay 5 USDC to 0x..."'),
    as_user: str = typer.Option("alice", "--as", help="A user from dev.json"),
    thread: str = typer.Option(None, "--thread", help="Continue this thread instead of starting one"),
    cancel: str = typer.Option(None, "--cancel", help="Cancel this run id instead of starting one"),
    as_json: bool = typer.Option(False, "--json", help="Print only the final state, as JSON"),
    api_url: str = typer.Option(None, "--api-url", help="Defaults to api_url in dev.json"),
) -> None:
    """Start an agent run and stream its progress. Exit 0 only if it completed and every payment and swap it made
    succeeded; 1 if it failed, a payment or swap did not go through, or the request was not understood; 2 for usage
    or connection problems. Role: requester, or an agent key (`--as shopper`)."""
    if not message and not cancel:
        typer.echo('say what to do, e.g. paygent run "balance" (or --cancel RUN_ID)', err=True)
        _exit(USAGE)

    async def main() -> int:
        async with _client(as_user, api_url) as http:
            return await (_cancel(http, cancel) if cancel else _start(http, message, thread, as_json))

    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:
        code = 130
    except (SystemExit, httpx.HTTPError) as exc:
        typer.echo(str(exc) if isinstance(exc, SystemExit) else f"cannot reach the API: {exc}", err=True)
        code = USAGE
    _exit(code)
