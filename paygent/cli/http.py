"""What every HTTP-speaking CLI command shares: who acts (`--as` a dev user or `--api-key`), where the API is,
and one way to turn a refusal into a message and an exit status (1 refused, 2 usage or connection problem).
Requests say `X-Paygent-Channel: cli`, so the audit log shows they came from the CLI.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, NoReturn

import httpx
import typer

from paygent.domain.text import unstorable
from paygent.paths import dev_json_path

AsUser = Annotated[str | None, typer.Option("--as", help="Act as this dev user or agent (key from .paygent/dev.json)")]
ApiKey = Annotated[str | None, typer.Option("--api-key", envvar="PAYGENT_API_KEY", help="Act with this API key")]
ApiUrl = Annotated[str | None, typer.Option("--api-url", help="Default: api_url from .paygent/dev.json")]
Key = Annotated[str | None, typer.Option("--idempotency-key", help="Repeat it to retry a request safely")]
Reason = Annotated[str | None, typer.Option("--reason", help="Why (kept in the audit log)")]


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def dev_json() -> dict[str, Any]:
    path = dev_json_path()
    return json.loads(path.read_text()) if path.exists() else {}


def client(as_user: str | None, api_key: str | None, api_url: str | None) -> httpx.Client:
    dev = dev_json()
    if api_key is None:
        if as_user is None:
            _fail("say who acts: --as NAME (a dev user) or --api-key KEY", 2)
        principals = {**dev.get("users", {}), **dev.get("agents", {})}  # people, and agents with their own keys
        user = principals.get(as_user)
        if user is None:
            known = ", ".join(principals) or f"none: {dev_json_path()} not found, run `paygent stack up`"
            _fail(f"no dev user or agent {as_user!r} (known: {known})", 2)
        api_key = user["api_key"]
    base = api_url or dev.get("api_url")
    if not base:
        _fail(f"--api-url is needed ({dev_json_path()} not found)", 2)
    return httpx.Client(
        base_url=base,
        timeout=httpx.Timeout(30.0),
        headers={"Authorization": f"Bearer {api_key}", "X-Paygent-Channel": "cli"},
    )


def call(
    http: httpx.Client, method: str, path: str, *, body: dict | None = None, key: str | None = None
) -> dict[str, Any]:
    """One request; a refusal ends the command with the server's reason (and the workflow's refusal type)."""
    headers = {"Idempotency-Key": key or str(uuid.uuid4())} if method == "POST" else {}
    for field, value in (body or {}).items():  # the API's own text rule, checked before anything is sent
        problem = unstorable(value) if isinstance(value, str) else None
        if problem:
            _fail(f"refused: --{field.replace('_', '-')} {problem}", 2)
    try:
        response = http.request(method, path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the API at {http.base_url}: {exc}", 2)
    if response.is_success:
        return response.json()
    try:
        error = response.json()["error"]
        kind = error.get("type") or error.get("code")
        message = f"refused (HTTP {response.status_code}, {kind}): {error['message']}"
    except (ValueError, KeyError, TypeError):
        message = f"refused (HTTP {response.status_code}): {response.text[:500]}"
    _fail(message, 1 if response.status_code < 500 else 2)
