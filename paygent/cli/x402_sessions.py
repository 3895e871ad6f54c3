"""`paygent x402 session start|fetch|status|end` (attached to the `x402` group in paygent/cli/x402.py): x402 spending sessions over the HTTP API (role: requester, or an
agent key, with a spend grant on the wallet). Exit 0 on success, 1 when refused, 2 on a usage or connection
problem (paygent/cli/http.py)."""

from __future__ import annotations

import base64
import json
import sys
import uuid
from typing import Annotated

import typer

from paygent.cli.http import ApiKey, ApiUrl, AsUser, Key, call, client, dev_json

session_app = typer.Typer(
    no_args_is_help=True, help="Spending sessions: a budget reserved (and approved) once, then paid requests."
)


def _echo(data: dict) -> None:
    typer.echo(json.dumps(data, indent=2))


@session_app.command("start")
def start(
    budget: Annotated[str, typer.Option(help="The most the whole session may pay, token units, e.g. 1.00")],
    origin: Annotated[list[str], typer.Option(help="An allowed origin, scheme://host[:port] (repeatable)")],
    ttl: Annotated[int, typer.Option(help="Seconds until the session ends")] = 900,
    max_price: Annotated[str | None, typer.Option(help="The most one request may pay (token units)")] = None,
    wallet: Annotated[str, typer.Option(help="Wallet name (dev.json) or id")] = "treasury",
    idempotency_key: Key = None,
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Start a session: the budget is reserved once (and approved once if the wallet's policy asks)."""
    wallets = dev_json().get("wallets", {})
    body = {
        "wallet_id": wallets[wallet]["id"] if wallet in wallets else wallet,
        "budget": budget,
        "max_price": max_price,
        "ttl_seconds": ttl,
        "origins": origin,
    }
    with client(as_user, api_key, api_url) as http:
        session = call(http, "POST", "/v1/x402/sessions", body=body, key=idempotency_key or str(uuid.uuid4()))
    _echo(session)


@session_app.command("fetch")
def fetch(
    session_id: str,
    url: str,
    method: Annotated[str, typer.Option("--method", "-X")] = "GET",
    header: Annotated[list[str] | None, typer.Option("--header", "-H", help="Name: value (repeatable)")] = None,
    data: Annotated[str | None, typer.Option("--data", "-d", help="Request body (text)")] = None,
    max_amount: Annotated[str | None, typer.Option(help="The most this request may pay (token units)")] = None,
    body_only: Annotated[bool, typer.Option("--body", help="Print only the answer's body (raw bytes)")] = False,
    idempotency_key: Key = None,
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """One paid request in the session. Repeat --idempotency-key to retry it: never paid twice."""
    headers = {}
    for item in header or []:
        name, sep, value = item.partition(":")
        if not sep:
            typer.echo(f"--header {item!r}: expected 'Name: value'", err=True)
            raise typer.Exit(2)
        headers[name.strip()] = value.strip()
    body = {"url": url, "method": method, "headers": headers, "body": data, "max_amount": max_amount}
    with client(as_user, api_key, api_url) as http:
        answer = call(
            http,
            "POST",
            f"/v1/x402/sessions/{session_id}/fetch",
            body={k: v for k, v in body.items() if v is not None},
            key=idempotency_key or str(uuid.uuid4()),
        )
    if not body_only:
        _echo(answer)
        return
    paid = answer.get("paid")
    typer.echo(f"HTTP {answer['status_code']}" + (f", paid {paid['amount']}" if paid else ", not paid"), err=True)
    raw = answer.get("body") or ""
    sys.stdout.buffer.write(base64.b64decode(raw) if answer.get("body_encoding") == "base64" else raw.encode())
    sys.stdout.flush()


@session_app.command("status")
def status(
    session_id: str,
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Budget, spent, held, remaining, expiry, last error and the paid requests."""
    _session_call("GET", session_id, as_user, api_key, api_url)


@session_app.command("end")
def end(
    session_id: str,
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """End the session now: what is left of its budget is released."""
    _session_call("DELETE", session_id, as_user, api_key, api_url)


def _session_call(method: str, session_id: str, as_user: str | None, api_key: str | None, api_url: str | None) -> None:
    """`status` and `end`: one call on the session's own path, its answer printed as JSON."""
    with client(as_user, api_key, api_url) as http:
        _echo(call(http, method, f"/v1/x402/sessions/{session_id}"))
