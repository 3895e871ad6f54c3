"""`paygent approvals list|show` and `paygent approve|reject|revoke|cancel|delegate|edit`: people act on approvals.

It speaks only HTTP to the Paygent API (never Temporal directly), as a dev user from `.paygent/dev.json`
(`--as bob`) or with an API key (`--api-key`), and says so with `X-Paygent-Channel: cli`, so the audit log shows
the decision came from the CLI. `approve` and `edit` fetch the current operation hash first: the user approves
what they were just shown, and an edit that landed in between is refused as stale instead of approved blindly.
Exit status: 0 accepted, 1 refused (the reason is printed), 2 usage or connection problem.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer

from paygent.cli.http import ApiKey, ApiUrl, AsUser, Key, Reason, _fail, call, client
from paygent.domain.approval_state import ApprovalStatus

app = typer.Typer(no_args_is_help=True, help="Approvals waiting for you, and their state.")


def _short(text: str | None, keep: int = 6) -> str:
    return "-" if not text else text if len(text) <= 2 * keep + 3 else f"{text[:keep]}...{text[-4:]}"


def _when(iso: str | None) -> str:
    return "-" if not iso else iso.replace("T", " ")[:16] + " UTC"


def describe(a: dict[str, Any]) -> str:
    """One line: what is asked and where it stands."""
    op = a.get("operation", a)
    return (
        f"{op['amount']} {op['asset']} to {op['to']} (payment {a['payment_id']}), asked by {a['initiator']}: "
        f"{a['status']}, {a['approvals_had']} of {a['approvals_needed']} approvals"
    )


def _outcome(http: httpx.Client, approval_id: str, result: dict[str, Any], verb: str) -> None:
    state = call(http, "GET", f"/v1/approvals/{approval_id}")
    line = f"{verb}: " + describe(state)
    if result.get("duplicate"):
        line += " (already recorded: nothing changed)"
    if state["status"] == ApprovalStatus.time_locked:
        line += f"; time-lock until {_when(state['timelock_until'])}, cancel still possible"
    elif state["status"] == ApprovalStatus.approved:  # its reason repeats the count: name who instead
        line += f" ({', '.join(state['approved_by'])})" if state["approved_by"] else ""
    elif state["status"] != ApprovalStatus.pending:
        line += f"; {state['reason']}"
    typer.echo(line)


@app.command("list")
def list_(
    status: Annotated[
        str,
        typer.Option(
            help="pending (what you may approve now), time_locked, approved, rejected, expired, cancelled or all"
        ),
    ] = "pending",
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON")] = False,
) -> None:
    """Approvals for you: by default the pending ones you may approve now (role: requester, approver, admin or
    auditor; admins and auditors see every approval of other statuses)."""
    with client(as_user, api_key, api_url) as http:
        items, cursor = [], None
        while True:
            page = _page(http, status, cursor)
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        typer.echo(f"no {status} approvals for you" if status != "all" else "no approvals for you")
        return
    for a in items:
        typer.echo(
            f"{a['approval_id']}  {a['amount']} {a['asset']} to {_short(a['to'])}  by {a['initiator']}  "
            f"{a['approvals_had']}/{a['approvals_needed']}  {a['status']}  expires {_when(a['expires_at'])}"
        )


def _page(http: httpx.Client, status: str, cursor: str | None) -> dict[str, Any]:
    params = {"status": status, **({"cursor": cursor} if cursor else {})}
    return call(http, "GET", "/v1/approvals?" + str(httpx.QueryParams(params)))


@app.command("show")
def show(
    approval_id: str,
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON")] = False,
) -> None:
    """The full state of one approval: the operation, its hash, who approved, who is awaited, deadlines (role:
    requester, approver, admin or auditor)."""
    with client(as_user, api_key, api_url) as http:
        a = call(http, "GET", f"/v1/approvals/{approval_id}")
    if as_json:
        typer.echo(json.dumps(a, indent=2))
        return
    op = a["operation"]
    approved = (
        ", ".join(
            r["approver"] + (f" for {r['on_behalf_of']}" if r["on_behalf_of"] else "") + f" ({r['channel']})"
            for r in a["approvals"]
        )
        or "nobody yet"
    )
    lines = [
        describe(a),
        f"  operation hash  {a['operation_hash']}",
        f"  wallet          {op['wallet_id']}",
        f"  memo            {op['memo'] or '-'}",
        f"  tier            {a['tier']['describe']}",
        f"  approved by     {approved}",
        f"  awaiting        {', '.join(a['awaiting']) or '-'}",
        f"  expires         {_when(a['expires_at'])}",
    ]
    if a["timelock_until"]:
        lines.append(f"  time-lock until {_when(a['timelock_until'])}")
    if a["decided_by"]:
        lines.append(f"  decided by      {a['decided_by']}: {a['reason']}")
    lines.append(f"  you may approve {'yes' if a.get('you_may_approve') else 'no'}")
    typer.echo("\n".join(lines))


def approve(
    approval_id: str,
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
    operation_hash: Annotated[
        str | None, typer.Option("--hash", help="Approve only this operation hash (default: the current one)")
    ] = None,
    on_behalf_of: Annotated[str | None, typer.Option(help="When you are a delegate of several")] = None,
    reason: Reason = None,
    idempotency_key: Key = None,
) -> None:
    """Approve the operation as it is now (its current hash is fetched and shown first). Role: approver."""
    with client(as_user, api_key, api_url) as http:
        state = call(http, "GET", f"/v1/approvals/{approval_id}")
        chosen = operation_hash or state["operation_hash"]
        typer.echo(f"approving {describe(state)}\n  operation hash {chosen}")
        result = call(
            http,
            "POST",
            f"/v1/approvals/{approval_id}/approve",
            key=idempotency_key,
            body={"operation_hash": chosen, "on_behalf_of": on_behalf_of, "reason": reason},
        )
        _outcome(http, approval_id, result, "approved" if result["counted"] else "approval accepted")


def _simple(decision: str, verb: str):
    def command(
        approval_id: str,
        as_user: AsUser = None,
        api_key: ApiKey = None,
        api_url: ApiUrl = None,
        reason: Reason = None,
        idempotency_key: Key = None,
    ) -> None:
        with client(as_user, api_key, api_url) as http:
            result = call(
                http,
                "POST",
                f"/v1/approvals/{approval_id}/{decision}",
                key=idempotency_key,
                body={"reason": reason} if reason else None,
            )
            _outcome(http, approval_id, result, verb)

    command.__name__ = decision
    command.__doc__ = {
        "reject": "Reject: one rejection by an approver ends the approval. Role: approver.",
        "revoke": "Withdraw your approval (possible until the threshold is met). Role: approver.",
        "cancel": "Cancel (initiator or approver), also during the time-lock. Role: requester or approver.",
    }[decision]
    return command


def delegate(
    approval_id: str,
    to: Annotated[str, typer.Option("--to", help="The user who may approve for you")],
    until: Annotated[str, typer.Option(help="ISO 8601 with a zone, e.g. 2026-12-01T00:00:00Z")],
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
    reason: Reason = None,
    idempotency_key: Key = None,
) -> None:
    """Let another user approve for you on this approval until a given time. Role: approver."""
    with client(as_user, api_key, api_url) as http:
        call(
            http,
            "POST",
            f"/v1/approvals/{approval_id}/delegate",
            key=idempotency_key,
            body={"delegate": to, "until": until, "reason": reason},
        )
        typer.echo(f"delegated to {to} until {_when(until)} on approval {approval_id}")


def edit(
    payment_id: str,
    amount: Annotated[str | None, typer.Option(help="New amount in token units")] = None,
    to: Annotated[str | None, typer.Option("--to", help="New recipient address")] = None,
    memo: Annotated[str | None, typer.Option(help="New memo")] = None,
    clear_memo: Annotated[bool, typer.Option("--clear-memo", help="Remove the memo")] = False,
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
    idempotency_key: Key = None,
) -> None:
    """Change a payment awaiting approval (initiator only; role: requester): every approval is cleared, the
    tier chosen again."""
    changes: dict[str, Any] = {k: v for k, v in (("amount", amount), ("to", to), ("memo", memo)) if v is not None}
    if clear_memo:
        changes["memo"] = None
    if not changes:
        _fail("nothing to change: give --amount, --to, --memo or --clear-memo", 2)
    with client(as_user, api_key, api_url) as http:
        state = call(http, "GET", f"/v1/approvals/{payment_id}")
        result = call(
            http,
            "POST",
            f"/v1/payments/{payment_id}/edit",
            key=idempotency_key,
            body={"operation_hash": state["operation_hash"], **changes},
        )
        typer.echo(f"edited; new operation hash {result['operation_hash']}")
        _outcome(http, payment_id, result, "now")


def attach(root: typer.Typer) -> None:
    """Top-level verbs on the `paygent` command: `paygent approve ID`, `paygent reject ID --reason ...`..."""
    root.add_typer(app, name="approvals")
    root.command("approve")(approve)
    root.command("reject")(_simple("reject", "rejected"))
    root.command("revoke")(_simple("revoke", "revoked"))
    root.command("cancel")(_simple("cancel", "cancelled"))
    root.command("delegate")(delegate)
    root.command("edit")(edit)
