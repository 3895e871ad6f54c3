"""`paygent wallets create|balance|limits`: wallets and their spending limits, over the HTTP API.

Keys are generated and sealed by the server; this command never sees one.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from paygent.cli.http import ApiKey, ApiUrl, AsUser, call, client, dev_json

app = typer.Typer(no_args_is_help=True, help="Wallets: create, balances, spending limits.")


def wallet_ref(name_or_id: str) -> str:
    """A dev wallet's name (from .paygent/dev.json) or an id."""
    known = dev_json().get("wallets", {})
    return known[name_or_id]["id"] if name_or_id in known else name_or_id


@app.command("create")
def create(name: str, as_user: AsUser = "alice", api_key: ApiKey = None, api_url: ApiUrl = None) -> None:
    """Create a wallet (role: admin): a new key, sealed at rest; prints its id and address."""
    with client(as_user, api_key, api_url) as http:
        w = call(http, "POST", "/v1/wallets", body={"name": name})
    typer.echo(f"wallet {w['name']}: id {w['id']}, address {w['address']}")


@app.command("balance")
def balance(wallet: str, as_user: AsUser = "alice", api_key: ApiKey = None, api_url: ApiUrl = None) -> None:
    """ETH and token balances of a wallet (name from dev.json, or id). Role: admin or auditor, or a grant on it."""
    with client(as_user, api_key, api_url) as http:
        b = call(http, "GET", f"/v1/wallets/{wallet_ref(wallet)}/balance")
    typer.echo(
        f"{b['address']}: {b['native']['amount']} ETH" + "".join(f", {t['amount']} {t['symbol']}" for t in b["tokens"])
    )


@app.command("limits")
def limits(
    wallet: str,
    cap: Annotated[str | None, typer.Option(help="Per-payment cap, token units")] = None,
    daily: Annotated[str | None, typer.Option(help="Rolling 24 h limit, token units")] = None,
    deny: Annotated[list[str] | None, typer.Option(help="Recipient to refuse (repeatable)")] = None,
    as_user: AsUser = "alice",
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Show a wallet's spending policy (admin, auditor, or a grant on it), or set it (role: admin) when
    --cap/--daily/--deny are given."""
    wallet_id = wallet_ref(wallet)
    with client(as_user, api_key, api_url) as http:
        if cap is None and daily is None and not deny:
            policy = call(http, "GET", f"/v1/wallets/{wallet_id}/spending-policy")
        else:
            body: dict = {"per_payment_cap": cap, "denylist": deny or []}
            if daily is not None:
                body["velocity"] = [{"name": "daily", "window_seconds": 86_400, "max": daily}]
            policy = call(http, "PUT", f"/v1/wallets/{wallet_id}/spending-policy", body=body)
    typer.echo(json.dumps(policy, indent=2))


def attach(root: typer.Typer) -> None:
    root.add_typer(app, name="wallets")
