"""`paygent swap 10 USDC EURC --slippage-bps 30`: quote, swap over the HTTP API, and wait for the result.

Prints the quote (amount out, the minimum, the price impact), then the status as it moves, then the real output
and the transaction. Exit codes as `paygent pay`: 0 confirmed (or started, with --wait 0); 1 refused, failed or
cancelled; 2 usage or connection problem; 3 still awaiting approval; 4 still on its way.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import typer

from paygent.cli.http import ApiKey, ApiUrl, AsUser, Key, call, client, dev_json
from paygent.cli.payments import exit_code
from paygent.domain.payment import PAYMENT_TERMINAL


def swap(
    amount: Annotated[str, typer.Argument(help="Input amount in token units, e.g. 10")],
    from_asset: Annotated[str, typer.Argument(help="Token sold, e.g. USDC")],
    to_asset: Annotated[str, typer.Argument(help="Token bought, e.g. EURC")],
    slippage_bps: Annotated[int | None, typer.Option(help="Slippage bound in basis points (default 50)")] = None,
    wallet: Annotated[str, typer.Option(help="Wallet name (dev.json) or id")] = "treasury",
    wait: Annotated[float, typer.Option(help="Seconds to wait for a final state (0: don't)")] = 90,
    idempotency_key: Key = None,
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Swap `amount` of FROM_ASSET for TO_ASSET on the Uniswap V2 router (role: requester or agent key; spend
    grant on the wallet). Governed like a payment: limits, budget, approvals apply to the input amount."""
    wallets = dev_json().get("wallets", {})
    wallet_id = wallets[wallet]["id"] if wallet in wallets else wallet
    body = {"wallet_id": wallet_id, "from_asset": from_asset, "to_asset": to_asset, "amount": amount}
    if slippage_bps is not None:
        body["slippage_bps"] = slippage_bps
    with client(as_user, api_key, api_url) as http:
        started = call(http, "POST", "/v1/swaps", body=body, key=idempotency_key or str(uuid.uuid4()))
        q, sid = started["quote"], started["id"]
        typer.echo(f"quote: {q['text']}")
        typer.echo(
            f"  amount out {q['amount_out']} {q['to_asset']}, minimum {q['min_amount_out']} {q['to_asset']} "
            f"({q['slippage_bps']} bps), price impact {q['price_impact']}"
        )
        typer.echo(f"swap {sid}: {started['status']}")
        view, shown = started, started["status"]
        deadline = time.monotonic() + wait
        while wait and time.monotonic() < deadline:
            view = call(http, "GET", f"/v1/swaps/{sid}")
            if view["status"] in PAYMENT_TERMINAL:
                break
            if view["status"] != shown:
                shown = view["status"]
                typer.echo(f"swap {sid}: {shown}")
            time.sleep(0.3)
        if view["status"] == "confirmed":
            typer.echo(
                f"swap {sid}: confirmed: {view['amount_in']} {view['from_asset']} -> {view['amount_out']} "
                f"{view['to_asset']} (minimum {view['min_amount_out']}), gas {view['gas_used']}, tx {view['tx_hash']}"
            )
        elif view["status"] in PAYMENT_TERMINAL:
            typer.echo(f"swap {sid}: {view['status']} {view.get('failure_reason') or ''}".rstrip())
        elif wait:
            typer.echo(f"swap {sid}: {view['status']} (not final after {wait:g}s)")
    raise typer.Exit(exit_code(view["status"], waited=bool(wait)))


def attach(root: typer.Typer) -> None:
    root.command("swap")(swap)
