"""`paygent agents create|list|show|rotate-key|disable`: agents as principals, over the HTTP API (admins;
`list` and `show` also auditors). A new or rotated key is printed once: store it where the agent runs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from paygent.cli.http import ApiKey, ApiUrl, AsUser, call, client, dev_json

app = typer.Typer(no_args_is_help=True, help="Agents with their own keys, wallets and budgets (admins).")


def _agent_id(name_or_id: str) -> str:
    """A dev agent's name (from .paygent/dev.json) or an id."""
    known = dev_json().get("agents", {})
    return known[name_or_id]["id"] if name_or_id in known else name_or_id


def _wallet_id(name_or_id: str) -> str:
    known = dev_json().get("wallets", {})
    return known[name_or_id]["id"] if name_or_id in known else name_or_id


@app.command("create")
def create(
    name: str,
    wallet: Annotated[list[str] | None, typer.Option(help="Wallet it may spend from (repeatable)")] = None,
    cap: Annotated[str | None, typer.Option(help="Per-payment cap, token units")] = None,
    daily: Annotated[str | None, typer.Option(help="Rolling 24 h budget, token units")] = None,
    as_user: AsUser = "alice",
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Create an agent (role: admin); prints its id and its API key, shown this once."""
    policy: dict = {"per_payment_cap": cap}
    if daily is not None:
        policy["velocity"] = [{"name": "daily", "window_seconds": 86_400, "max": daily}]
    body = {"name": name, "wallet_ids": [_wallet_id(w) for w in wallet or []], "spending_policy": policy}
    with client(as_user, api_key, api_url) as http:
        a = call(http, "POST", "/v1/agents", body=body)
    typer.echo(f"agent {a['name']}: id {a['id']}\napi key (shown once): {a['api_key']}")


@app.command("list")
def list_(as_user: AsUser = "alice", api_key: ApiKey = None, api_url: ApiUrl = None) -> None:
    """The tenant's agents (role: admin or auditor)."""
    with client(as_user, api_key, api_url) as http:
        items = call(http, "GET", "/v1/agents")["items"]
    if not items:
        typer.echo("no agents (create one with: paygent agents create NAME --wallet treasury --as alice)")
    for a in items:
        state = "disabled" if a["disabled"] else "active"
        typer.echo(f"{a['id']}  {a['name']:<20} {state:<8} owner {a['owner']}, wallets {len(a['wallet_ids'])}")


@app.command("show")
def show(agent: str, as_user: AsUser = "alice", api_key: ApiKey = None, api_url: ApiUrl = None) -> None:
    """One agent: owner, wallets, spending policy (role: admin or auditor)."""
    with client(as_user, api_key, api_url) as http:
        typer.echo(json.dumps(call(http, "GET", f"/v1/agents/{_agent_id(agent)}"), indent=2))


@app.command("rotate-key")
def rotate_key(agent: str, as_user: AsUser = "alice", api_key: ApiKey = None, api_url: ApiUrl = None) -> None:
    """A new key for the agent; the old one stops working at once (role: admin)."""
    with client(as_user, api_key, api_url) as http:
        a = call(http, "POST", f"/v1/agents/{_agent_id(agent)}/rotate-key")
    typer.echo(f"agent {a['name']}: new api key (shown once): {a['api_key']}")


@app.command("disable")
def disable(agent: str, as_user: AsUser = "alice", api_key: ApiKey = None, api_url: ApiUrl = None) -> None:
    """Switch the agent off: its key answers 401, its waiting runs and payments are cancelled (role: admin)."""
    with client(as_user, api_key, api_url) as http:
        a = call(http, "POST", f"/v1/agents/{_agent_id(agent)}/disable")
    typer.echo(
        f"agent {a['id']} disabled: {a['runs_cancelled']} run(s) and {a['payments_cancelled']} payment(s) cancelled"
    )


def attach(root: typer.Typer) -> None:
    root.add_typer(app, name="agents")
