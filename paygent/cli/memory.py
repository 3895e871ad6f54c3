"""`paygent memory put|get|delete|search|partitions|clear-partition|memorize|recall|stats|grant`: memory over the
HTTP API, as a dev user or agent (`--as`) or with a key. Values are JSON (`--value '{"a": 1}'`); a value that is
not JSON is stored as a string. Scopes are written `a/b`; omitted, the caller's private scope."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

import typer

from paygent.cli.http import ApiKey, ApiUrl, AsUser, call, client

app = typer.Typer(no_args_is_help=True, help="Memory: scoped items, search, partitions, recall, stats, grants.")
ScopeOpt = Annotated[str | None, typer.Option("--scope", help="a/b (default: your private scope)")]


def _get(path: str, params: dict[str, Any], as_user, api_key, api_url) -> dict[str, Any]:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    with client(as_user, api_key, api_url) as http:
        return call(http, "GET", f"{path}?{query}" if query else path)


def _show(answer: dict[str, Any]) -> None:
    typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@app.command("put")
def put(
    key: str,
    value: Annotated[str, typer.Option("--value", help="JSON, or plain text")],
    scope: ScopeOpt = None,
    ttl: Annotated[int | None, typer.Option("--ttl", help="Seconds until it expires")] = None,
    refresh_on_read: Annotated[bool, typer.Option("--refresh-on-read", help="Each read restarts the TTL")] = False,
    partition: Annotated[str, typer.Option(help="Partition inside the scope")] = "",
    if_version: Annotated[int | None, typer.Option("--if-version", help="Only if at this version (0: new)")] = None,
    as_user: AsUser = "alice",
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Store a value; prints its version."""
    body: dict[str, Any] = {"key": key, "value": _json_or_text(value), "partition": partition}
    for name, given in (("scope", scope), ("ttl_seconds", ttl), ("if_version", if_version)):
        if given is not None:
            body[name] = given
    if refresh_on_read:
        body["refresh_ttl_on_read"] = True
    with client(as_user, api_key, api_url) as http:
        answer = call(http, "PUT", "/v1/memory/items", body=body)
    expiry = f", expires {answer['expires_at']}" if answer.get("expires_at") else ""
    typer.echo(f"{answer['scope']} {answer['key']}: version {answer['version']}{expiry}")


@app.command("get")
def get(key: str, scope: ScopeOpt = None, as_user: AsUser = "alice", api_key: ApiKey = None, api_url: ApiUrl = None):
    """A value, with its version."""
    _show(_get("/v1/memory/items", {"key": key, "scope": scope}, as_user, api_key, api_url))


@app.command("delete")
def delete(key: str, scope: ScopeOpt = None, as_user: AsUser = "alice", api_key: ApiKey = None, api_url: ApiUrl = None):
    """Delete a key."""
    query = urlencode({k: v for k, v in {"key": key, "scope": scope}.items() if v is not None})
    with client(as_user, api_key, api_url) as http:
        answer = call(http, "DELETE", f"/v1/memory/items?{query}")
    typer.echo(f"{answer['scope']} {key}: {'deleted' if answer['deleted'] else 'was not there'}")


@app.command("search")
def search(
    pattern: Annotated[str | None, typer.Argument(help="orders/*/status; ** crosses '/'")] = None,
    scope: ScopeOpt = None,
    where: Annotated[str | None, typer.Option("--where", help='JSON fields the value holds: {"status":"open"}')] = None,
    partition: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_user: AsUser = "alice",
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Keys matching a pattern, newest first."""
    params = {"scope": scope, "pattern": pattern, "filter": where, "partition": partition, "limit": limit}
    page = _get("/v1/memory/search", params, as_user, api_key, api_url)
    if not page["items"]:
        typer.echo(f"nothing in {page['scope']} matches")
    for item in page["items"]:
        value = json.dumps(item["value"], ensure_ascii=False)
        typer.echo(f"{item['key']}  v{item['version']}  {value[:100]}")
    if page["next_cursor"]:
        typer.echo(f"(more: the API's cursor {page['next_cursor']})")


@app.command("partitions")
def partitions(scope: ScopeOpt = None, as_user: AsUser = "alice", api_key: ApiKey = None, api_url: ApiUrl = None):
    """Partitions of a scope with their counts."""
    answer = _get("/v1/memory/partitions", {"scope": scope}, as_user, api_key, api_url)
    if not answer["partitions"]:
        typer.echo(f"no items in {answer['scope']}")
    for p in answer["partitions"]:
        typer.echo(f"{p['partition'] or '(none)':<30} {p['count']}")


@app.command("clear-partition")
def clear_partition(
    partition: str, scope: ScopeOpt = None, as_user: AsUser = "alice", api_key: ApiKey = None, api_url: ApiUrl = None
) -> None:
    """Delete every item of one partition."""
    query = urlencode({"scope": scope} if scope else {})
    with client(as_user, api_key, api_url) as http:
        answer = call(http, "DELETE", f"/v1/memory/partitions/{partition}" + (f"?{query}" if query else ""))
    typer.echo(f"{answer['scope']} partition {partition}: {answer['removed']} items removed")


@app.command("memorize")
def memorize(
    text: str,
    scope: ScopeOpt = None,
    metadata: Annotated[str | None, typer.Option(help="JSON object")] = None,
    as_user: AsUser = "alice",
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Store a text for semantic recall."""
    body: dict[str, Any] = {"text": text, "metadata": json.loads(metadata) if metadata else {}}
    if scope:
        body["scope"] = scope
    with client(as_user, api_key, api_url) as http:
        answer = call(http, "POST", "/v1/memory/texts", body=body)
    typer.echo(f"memorized in {answer['scope']} (model {answer['model']}): {answer['id']}")


@app.command("recall")
def recall(
    query: str,
    scope: ScopeOpt = None,
    k: Annotated[int, typer.Option("-k")] = 5,
    as_user: AsUser = "alice",
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """The stored texts nearest to a query."""
    body: dict[str, Any] = {"query": query, "k": k} | ({"scope": scope} if scope else {})
    with client(as_user, api_key, api_url) as http:
        answer = call(http, "POST", "/v1/memory/recall", body=body)
    if not answer["results"]:
        typer.echo(f"nothing stored in {answer['scope']} to recall")
    for r in answer["results"]:
        typer.echo(f"{r['score']:.3f}  {r['key'] or r['id']}: {r['text'][:100]}")


@app.command("stats")
def stats(scope: ScopeOpt = None, as_user: AsUser = "alice", api_key: ApiKey = None, api_url: ApiUrl = None):
    """Keys, bytes, expired rows not yet pruned, reads and writes over the last hour, cache hit rate."""
    _show(_get("/v1/memory/stats", {"scope": scope}, as_user, api_key, api_url))


@app.command("grant")
def grant(
    scope: str,
    agent: str,
    access: Annotated[str, typer.Argument(help="read, write or none")],
    as_user: AsUser = "alice",
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Let an agent read or write a shared scope, or take it back with `none` (role: admin)."""
    with client(as_user, api_key, api_url) as http:
        answer = call(http, "PUT", "/v1/memory/grants", body={"scope": scope, "agent": agent, "access": access})
    typer.echo(f"{answer['agent']}: {answer['access']} on {answer['scope']}")


def attach(root: typer.Typer) -> None:
    root.add_typer(app, name="memory")
