"""`paygent pay` and `paygent payments list|show|cancel`: payments over the HTTP API.

`pay` waits for the final state and says what it waits for: while the payment awaits approval, who must approve
and how many, then each approval as it lands and the time-lock. Exit codes (README, "paygent pay exit codes"):
0 confirmed (or started, with --wait 0); 1 refused, failed or cancelled; 2 usage or connection problem;
3 still awaiting approval or time-locked when --wait ran out; 4 still on its way (pending, signing, submitted).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any

import httpx
import typer

from paygent.cli.http import ApiKey, ApiUrl, AsUser, Key, Reason, call, client, dev_json
from paygent.domain.approval_state import APPROVAL_FINAL, ApprovalStatus
from paygent.domain.payment import PAYMENT_TERMINAL, PAYMENT_WAITING, PaymentStatus

EXIT_CONFIRMED, EXIT_NOT_PAID, EXIT_USAGE, EXIT_AWAITING_APPROVAL, EXIT_IN_PROGRESS = 0, 1, 2, 3, 4

app = typer.Typer(no_args_is_help=True, help="Your payments: list, show, cancel.")


def exit_code(status: str, *, waited: bool) -> int:
    if status == PaymentStatus.confirmed or not waited and status not in PAYMENT_TERMINAL:
        return EXIT_CONFIRMED  # --wait 0: starting it was the job
    if status in PAYMENT_TERMINAL:
        return EXIT_NOT_PAID
    return EXIT_AWAITING_APPROVAL if status in PAYMENT_WAITING else EXIT_IN_PROGRESS


def final_line(p: dict[str, Any]) -> str:
    detail = p.get("tx_hash") or p.get("failure_reason") or ""
    return f"payment {p['id']}: {p['status']} {detail}".rstrip()


class ApprovalWatch:
    """Says once who must approve, then each change (n of m, by whom; the time-lock) as it lands."""

    def __init__(self, http: httpx.Client, payment_id: str) -> None:
        self.http, self.payment_id = http, payment_id
        self.shown: tuple | None = None
        self.ended = False  # the approval reached its end (approved, rejected, ...) and that was shown

    def check(self) -> None:
        response = self.http.get(f"/v1/approvals/{self.payment_id}")
        if not response.is_success:  # the approval workflow is starting, or the caller may not read it
            return
        a = response.json()
        now = (a["status"], a["approvals_had"], tuple(a["approved_by"]), a.get("timelock_until"))
        if now == self.shown:
            return
        if self.shown is None:
            approvers = ", ".join(a["tier"]["approvers"])
            typer.echo(
                f"  needs {a['approvals_needed']} approval(s) from {approvers}; "
                f"{a['approvals_had']} so far; approval deadline {_when(a['expires_at'])}"
            )
            typer.echo(f"  an approver runs: paygent approve {self.payment_id} --as <approver>")
        else:
            by = f" ({', '.join(a['approved_by'])})" if a["approved_by"] else ""
            line = f"  approvals: {a['approvals_had']} of {a['approvals_needed']}{by}"
            if a.get("timelock_until") and a["status"] == ApprovalStatus.time_locked:
                line += f"; time-locked until {_when(a['timelock_until'])}"
            elif a["status"] in APPROVAL_FINAL:
                line += f"; approval {a['status']}"
            typer.echo(line)
        self.shown = now
        self.ended = a["status"] in APPROVAL_FINAL


def _when(iso: str | None) -> str:
    return "-" if not iso else iso.replace("T", " ")[:16] + " UTC"


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
    """Pay `amount` of `asset` to `to` from `wallet` (role: requester or agent key; spend grant on the wallet).
    Exit 0 confirmed, 1 refused/failed/cancelled, 2 usage, 3 still awaiting approval, 4 still on its way."""
    wallets = dev_json().get("wallets", {})
    wallet_id = wallets[wallet]["id"] if wallet in wallets else wallet
    body = {"wallet_id": wallet_id, "to": to, "amount": amount, "asset": asset, "memo": memo}
    with client(as_user, api_key, api_url) as http:
        payment = call(http, "POST", "/v1/payments", body=body, key=idempotency_key or str(uuid.uuid4()))
        pid = payment["id"]
        if payment["status"] not in PAYMENT_TERMINAL:  # a replayed request may answer the final state at once
            typer.echo(f"payment {pid}: {payment['status']}")
        shown, watch = payment["status"], ApprovalWatch(http, pid)
        deadline = time.monotonic() + wait
        while wait and time.monotonic() < deadline:
            payment = call(http, "GET", f"/v1/payments/{pid}")
            if payment["status"] in PAYMENT_WAITING or watch.shown is not None and not watch.ended:
                watch.check()  # and once more after the payment moved on: how the approval ended
            if payment["status"] != shown and payment["status"] not in PAYMENT_TERMINAL:
                shown = payment["status"]
                typer.echo(f"payment {pid}: {shown}")
            if payment["status"] in PAYMENT_TERMINAL:
                break
            time.sleep(0.3)
        if payment["status"] in PAYMENT_TERMINAL:
            typer.echo(final_line(payment))
        elif wait:
            waiting = "still awaiting approval" if payment["status"] in PAYMENT_WAITING else "not final yet"
            typer.echo(
                f"payment {pid}: {payment['status']} ({waiting} after {wait:g}s; "
                f"follow it with: paygent payments show {pid})"
            )
    raise typer.Exit(exit_code(payment["status"], waited=bool(wait)))


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="Only this status, e.g. awaiting_approval")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (newest first)")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON")] = False,
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Your payments, newest first (admins and auditors: the tenant's)."""
    params = f"?limit={limit}" + (f"&status={status}" if status else "")
    with client(as_user, api_key, api_url) as http:
        items = call(http, "GET", f"/v1/payments{params}")["items"]
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        typer.echo(f"no {status} payments" if status else "no payments")
        return
    for p in items:
        what = (p.get("x402") or {}).get("url") if p.get("kind") == "x402" else p.get("to")
        typer.echo(f"{p['id']}  {p['status']:<17} {p.get('amount', '?')} {p.get('asset', '')} -> {what}")


@app.command()
def show(
    payment_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON")] = False,
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """One payment: its status, transaction, and status history."""
    with client(as_user, api_key, api_url) as http:
        p = call(http, "GET", f"/v1/payments/{payment_id}")
        if as_json:
            typer.echo(json.dumps(p, indent=2))
            return
        typer.echo(final_line(p))
        what = (p.get("x402") or {}).get("url") if p.get("kind") == "x402" else p.get("to")
        typer.echo(f"  {p.get('amount', '?')} {p.get('asset', '')} -> {what}")
        if p["status"] in PAYMENT_WAITING:
            ApprovalWatch(http, payment_id).check()
    for h in p.get("status_history", []):
        typer.echo(
            f"  {h['at'][:19].replace('T', ' ')}  {h['status'] or h['action']:<17} {h['actor']}"
            + (f"  {h['reason']}" if h.get("reason") else "")
        )


@app.command()
def cancel(
    payment_id: str,
    reason: Reason = None,
    idempotency_key: Key = None,
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Cancel before signing (its reservation is released); refused with the reason after. Role: requester."""
    with client(as_user, api_key, api_url) as http:
        done = call(http, "POST", f"/v1/payments/{payment_id}/cancel", key=idempotency_key, body={"reason": reason})
    typer.echo(f"payment {payment_id}: {done['status']} {done.get('failure_reason') or ''}".rstrip())


def attach(root: typer.Typer) -> None:
    root.command("pay")(pay)
    root.add_typer(app, name="payments")
