"""`paygent x402 ...`: pay-per-request over the HTTP API. A group, so that further x402 verbs (spending sessions)
sit beside `fetch`.

`fetch URL --max 0.05` asks the API to fetch the URL, paying with x402 (at most `--max`) if it answers 402, and
prints what was paid and what the server answered. Exit codes as `paygent pay` (0 paid or nothing asked, 1
refused/failed, 2 usage, 3 awaiting approval, 4 not final yet).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated

import typer

from paygent.cli.http import ApiKey, ApiUrl, AsUser, Key, call, client, dev_json
from paygent.cli.payments import EXIT_CONFIRMED, exit_code
from paygent.cli.x402_sessions import session_app
from paygent.domain.payment import PAYMENT_TERMINAL, PaymentStatus

app = typer.Typer(no_args_is_help=True, help="Pay-per-request (x402): fetch a URL, paying if it asks.")
app.add_typer(session_app, name="session")  # `paygent x402 session start|fetch|status|end`


@app.command()
def fetch(
    url: str,
    max_amount: Annotated[str, typer.Option("--max", help="Pay at most this many token units, e.g. 0.05")],
    wallet: Annotated[str, typer.Option(help="Wallet name (dev.json) or id")] = "treasury",
    asset: Annotated[str, typer.Option(help="Token symbol")] = "USDC",
    wait: Annotated[float, typer.Option(help="Seconds to wait for the answer")] = 60,
    as_json: Annotated[bool, typer.Option("--json", help="Print the payment as the API shows it")] = False,
    idempotency_key: Key = None,
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Fetch URL, paying with x402 up to --max (role: requester or agent key; spend grant on the wallet)."""
    wallets = dev_json().get("wallets", {})
    body = {
        "kind": "x402",
        "wallet_id": wallets[wallet]["id"] if wallet in wallets else wallet,
        "url": url,
        "max_amount": max_amount,
        "asset": asset,
    }
    with client(as_user, api_key, api_url) as http:
        payment = call(http, "POST", "/v1/payments", body=body, key=idempotency_key or str(uuid.uuid4()))
        deadline = time.monotonic() + wait
        while payment["status"] not in PAYMENT_TERMINAL and time.monotonic() < deadline:
            time.sleep(0.3)
            payment = call(http, "GET", f"/v1/payments/{payment['id']}")
    if as_json:
        typer.echo(json.dumps(payment, indent=2))
    else:
        info = payment.get("x402") or {}
        if payment["status"] == PaymentStatus.confirmed:
            typer.echo(f"paid:     {payment['amount']} {payment['asset']} to {payment['to']} (payment {payment['id']})")
        else:
            reason = payment.get("failure_reason") or "not final yet"
            typer.echo(f"not paid: payment {payment['id']} {payment['status']}: {reason}")
        if info.get("response_status") is not None:
            excerpt = info.get("response_body_excerpt") or ""
            typer.echo(f"answer:   HTTP {info['response_status']} {excerpt}".rstrip())
    # a server that asked nothing answered without payment: the fetch did what was asked
    answered = (payment.get("x402") or {}).get("response_status")
    free = payment["status"] == PaymentStatus.cancelled and answered is not None and answered < 400
    raise typer.Exit(EXIT_CONFIRMED if free else exit_code(payment["status"], waited=True))
