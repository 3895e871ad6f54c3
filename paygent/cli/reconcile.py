"""`paygent reconcile show|resolve`: a wallet's reconciliation, and an operator's resolution of a mismatch
(over the HTTP API: GET /v1/wallets/{id}/reconciliation, POST .../mismatches/{id}/resolve)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from paygent.cli.http import ApiKey, ApiUrl, AsUser, call, client
from paygent.cli.wallets import wallet_ref as _wallet_id

app = typer.Typer(no_args_is_help=True, help="Reconciliation: ledger against chain, and mismatches to resolve.")


@app.command("show")
def show(wallet: str, as_user: AsUser = "alice", api_key: ApiKey = None, api_url: ApiUrl = None) -> None:
    """A wallet's reconciliation (name from dev.json, or id), as JSON: open and resolved mismatches. Role: admin
    or auditor."""
    with client(as_user, api_key, api_url) as http:
        typer.echo(json.dumps(call(http, "GET", f"/v1/wallets/{_wallet_id(wallet)}/reconciliation"), indent=2))


@app.command("resolve")
def resolve(
    wallet: str,
    mismatch_id: int,
    reason: Annotated[str, typer.Option(help="Why the mismatch is closed (audited)")],
    as_user: AsUser = "alice",
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Close an open mismatch of a wallet with a reason (role: admin; audited)."""
    with client(as_user, api_key, api_url) as http:
        done = call(
            http,
            "POST",
            f"/v1/wallets/{_wallet_id(wallet)}/reconciliation/mismatches/{mismatch_id}/resolve",
            body={"reason": reason},
        )
    typer.echo(f"mismatch {done['mismatch_id']} ({done['cause']}) resolved by {done['resolved_by']}: {done['reason']}")
