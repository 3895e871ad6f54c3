"""`paygent pay`: one transfer over the HTTP API (role: requester, or an agent key, with a spend grant on the
wallet), waiting for its final state. Exit 0 when confirmed, 1 when refused, failed or cancelled."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import typer

from paygent.cli_http import ApiKey, ApiUrl, AsUser, Key, call, client, dev_json
from paygent.domain.payment import PAYMENT_TERMINAL, PaymentStatus


def pay(
    to: Annotated[str, typer.Option(help="Recipient address, 0x...")],
    amount: Annotated[str, typer.Option(help="Token units, e.g. 2.50")],
    wallet: Annotated[str, typer.Option(help="Wallet name (dev.json) or id")] = "treasury",
    asset: Annotated[str, typer.Option(help="Token symbol")] = "USDC",
    memo: Annotated[str | None, typer.Option(help="Kept with the payment")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for a final state (0: don't)")] = 60,
    idempotency_key: Key = None,
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Pay `amount` of `asset` to `to` from `wallet` (role: requester or agent key; spend grant on the wallet)."""
    wallets = dev_json().get("wallets", {})
    wallet_id = wallets[wallet]["id"] if wallet in wallets else wallet
    body = {"wallet_id": wallet_id, "to": to, "amount": amount, "asset": asset, "memo": memo}
    with client(as_user, api_key, api_url) as http:
        started = call(http, "POST", "/v1/payments", body=body, key=idempotency_key or str(uuid.uuid4()))
        typer.echo(f"payment {started['id']}: {started['status']}")
        deadline = time.monotonic() + wait
        payment = started
        while wait and payment["status"] not in PAYMENT_TERMINAL and time.monotonic() < deadline:
            time.sleep(0.3)
            payment = call(http, "GET", f"/v1/payments/{started['id']}")
    if payment["status"] in PAYMENT_TERMINAL:
        detail = payment.get("tx_hash") or payment.get("failure_reason") or ""
        typer.echo(f"payment {payment['id']}: {payment['status']} {detail}".rstrip())
    started_only = not wait and payment["status"] not in PAYMENT_TERMINAL  # --wait 0: starting it was the job
    raise typer.Exit(0 if payment["status"] == PaymentStatus.confirmed or started_only else 1)


def attach(root: typer.Typer) -> None:
    root.command("pay")(pay)
