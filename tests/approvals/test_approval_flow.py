"""The whole path a person takes: a 5,000 USDC payment waits for approval; bob approves over HTTP, carol from the
CLI; the time-lock holds the transfer back; cancelling during it stops the payment; an operator's
`temporal workflow signal` counts like any other approval. Each decision is audited with its channel.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime

import sqlalchemy as sa

from paygent.db.schema import payment_transactions
from paygent.paths import temporal_cli
from tests.api.helpers import new_recipient, transfers_to, wait_final
from tests.approvals.helpers import (
    approval,
    audit_of,
    auth,
    cli,
    decide,
    pay,
    payment,
    reservation_status,
    tiers,
    until,
    wallet_with_policy,
)


async def test_api_and_cli_approvals_then_the_time_lock_then_the_chain(http, dev, app_settings, db_engine, api_url):
    wallet = await wallet_with_policy(http, dev, app_settings, tiers(timelock=2))
    pid = await pay(http, dev, "5000", wallet_id=wallet["id"])
    state = await approval(http, dev, pid)
    assert (state["status"], state["approvals_needed"], state["operation"]["amount"]) == ("pending", 2, "5000")
    assert state["awaiting"] == ["bob", "carol", "dave"] and state["you_may_approve"] is True

    r = await decide(http, dev, "bob", pid, "approve", {"operation_hash": state["operation_hash"]})
    assert r.status_code == 200, r.text
    assert (r.json()["counted"], r.json()["approvals_had"], r.json()["status"]) == (True, 1, "pending")

    out = await cli("approve", pid, "--api-url", api_url, "--api-key", dev["users"]["carol"]["api_key"])
    assert out.code == 0, out.err
    assert "approved:" in out.out and "time-lock until" in out.out, out.out

    locked = await approval(http, dev, pid)
    assert locked["status"] == "time_locked" and locked["approved_by"] == ["bob", "carol"]
    timelock_until = datetime.fromisoformat(locked["timelock_until"])
    waiting = await payment(http, dev, pid)
    for _ in range(100):  # the payment shows the time-lock too (its child approval signals it)
        if waiting["status"] == "time_locked":
            break
        await asyncio.sleep(0.02)
        waiting = await payment(http, dev, pid)
    assert waiting["status"] == "time_locked" and waiting["tx_hash"] is None  # nothing signed yet

    final = await wait_final(http, dev, pid, timeout=30)
    assert final["status"] == "confirmed", final
    async with db_engine.connect() as conn:
        signed_at = await conn.scalar(
            sa.select(sa.func.min(payment_transactions.c.created_at)).where(
                payment_transactions.c.payment_id == uuid.UUID(pid)
            )
        )
    # nothing was signed before the time-lock ended (anvil's block clock is not compared: tests that mine and
    # roll back blocks move it independently of the wall clock)
    assert signed_at >= timelock_until, (signed_at, timelock_until)
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, final["to"]) == 1

    assert await audit_of(db_engine, pid, "approval.approve") == [
        ("approval.approve", "bob", "api"),
        ("approval.approve", "carol", "cli"),
    ]
    decided = await approval(http, dev, pid)
    assert decided["status"] == "approved" and decided["decided_by"] == "carol"


async def test_cancel_during_the_time_lock_stops_the_payment_and_releases_the_reservation(
    http, dev, app_settings, db_engine, api_url
):
    to = new_recipient()
    pid = await pay(http, dev, "5000", to=to)  # treasury, default policy: 2 of 3, then a 1-hour time-lock
    assert await reservation_status(db_engine, pid) == "reserved"
    op_hash = (await approval(http, dev, pid))["operation_hash"]
    for user in ("bob", "dave"):
        r = await decide(http, dev, user, pid, "approve", {"operation_hash": op_hash})
        assert r.status_code == 200, r.text
    assert (await approval(http, dev, pid))["status"] == "time_locked"
    for spelling in ("time_locked", "timelocked"):  # the spelling before issue 10 still filters the same
        listed = await http.get("/v1/approvals", params={"status": spelling}, headers=auth(dev, "alice"))
        assert listed.status_code == 200 and pid in [a["payment_id"] for a in listed.json()["items"]], listed.text

    out = await cli(
        "cancel",
        pid,
        "--reason",
        "changed our mind",
        "--api-url",
        api_url,
        "--api-key",
        dev["users"]["alice"]["api_key"],
    )
    assert out.code == 0, out.err
    assert "cancelled" in out.out and "changed our mind" in out.out, out.out

    final = await wait_final(http, dev, pid, timeout=30)
    assert final["status"] == "cancelled" and "approval cancelled" in final["failure_reason"], final
    assert final["tx_hash"] is None
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 0
    await until(lambda: reservation_status(db_engine, pid), lambda s: s == "released")
    assert ("approval.cancel", "alice", "cli") in await audit_of(db_engine, pid)

    again = await cli("cancel", pid, "--api-url", api_url, "--api-key", dev["users"]["alice"]["api_key"])
    assert again.code == 1 and "ApprovalClosed" in again.err and "already cancelled" in again.err, again


async def temporal(app_settings, temporal_env, *args: str) -> str:
    """The real `temporal` CLI against this session's dev server, as an operator would run it."""
    proc = await asyncio.create_subprocess_exec(
        str(temporal_cli()),
        "workflow",
        *args,
        "--address",
        app_settings.temporal_address,
        "--namespace",
        temporal_env.client.namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_a_temporal_cli_signal_counts_like_an_api_approval(http, dev, app_settings, temporal_env, db_engine):
    pid = await pay(http, dev, "5000")
    op_hash = (await approval(http, dev, pid))["operation_hash"]
    saved_query = f'PaygentApprovalState = "pending" AND PaygentTenant = "{dev["tenant"]["id"]}"'
    listed = await until(
        lambda: temporal(app_settings, temporal_env, "list", "--query", saved_query, "-o", "json"),
        lambda out: f"approval-{pid}" in out,
    )  # the Web UI's "pending approvals" saved query
    assert all(w["type"]["name"] == "ApprovalWorkflow" for w in _json_lines(listed))

    await temporal(
        app_settings,
        temporal_env,
        "signal",
        "--workflow-id",
        f"approval-{pid}",
        "--name",
        "approve",
        "--input",
        json.dumps({"approver": "bob", "operation_hash": op_hash}),
    )

    state = await until(lambda: approval(http, dev, pid, "carol"), lambda a: a["approvals_had"] == 1)
    assert state["approvals"][0]["approver"] == "bob" and state["approvals"][0]["channel"] == "temporal"
    assert state["awaiting"] == ["carol", "dave"]
    await until(lambda: audit_of(db_engine, pid, "approval.approve"), lambda rows: len(rows) == 1)
    assert await audit_of(db_engine, pid, "approval.approve") == [("approval.approve", "bob", "temporal")]

    r = await decide(http, dev, "carol", pid, "approve", {"operation_hash": op_hash})  # counted alongside it
    assert r.status_code == 200 and r.json()["approvals_had"] == 2 and r.json()["status"] == "time_locked", r.text
    r = await decide(http, dev, "alice", pid, "cancel", {"reason": "test cleanup"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert (await wait_final(http, dev, pid))["status"] == "cancelled"


def _json_lines(text: str) -> list[dict]:
    """`temporal workflow list -o json` prints a JSON array (or one object per line in older CLIs)."""
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]
