"""Who may act, and when: the initiator cannot approve, another tenant cannot even see, a decision on a closed or
edited approval is refused with the workflow's own reason, and 50 concurrent approvals count each person once.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest_asyncio

from paygent.db.accounts import create_user, ensure_tenant
from tests.api.helpers import auth, wait_final
from tests.approvals.helpers import (
    approval,
    audit_of,
    cli,
    decide,
    pay,
    payment,
    reservation_status,
    tiers,
    until,
    wallet_with_policy,
)


@pytest_asyncio.fixture(scope="module")
async def outsider(db_engine) -> dict:
    """mallory, an admin of another tenant: she must not be able to tell the dev tenant's approvals exist."""
    async with db_engine.begin() as conn:
        tenant_id = await ensure_tenant(conn, f"outsiders-{uuid.uuid4().hex[:6]}")
        _, key = await create_user(conn, tenant_id, "mallory", ["admin", "approver"])
    return {"Authorization": f"Bearer {key}"}


async def test_who_sees_and_who_may_approve(http, dev, outsider, api_url):
    pid = await pay(http, dev, "5000")
    state = await approval(http, dev, pid)

    listed = await http.get("/v1/approvals", params={"status": "pending"}, headers=auth(dev, "bob"))
    assert listed.status_code == 200 and pid in [a["approval_id"] for a in listed.json()["items"]], listed.text
    mine = (await http.get("/v1/approvals?status=pending", headers=auth(dev, "alice"))).json()["items"]
    assert pid not in [a["approval_id"] for a in mine]  # alice asked for it: nothing for her to approve
    out = await cli("approvals", "list", "--api-url", api_url, "--api-key", dev["users"]["carol"]["api_key"])
    assert out.code == 0 and pid in out.out and "5000 USDC" in out.out, (out.out, out.err)

    r = await decide(http, dev, "alice", pid, "approve", {"operation_hash": state["operation_hash"]})
    assert r.status_code == 403, r.text  # alice is no approver (self-approval itself: tests/workflows)
    assert r.json()["error"] == {"code": "forbidden", "field": None, "message": "this action needs the approver role"}

    assert (await http.get(f"/v1/approvals/{pid}", headers=outsider)).status_code == 404
    r = await http.post(
        f"/v1/approvals/{pid}/approve", json={"operation_hash": state["operation_hash"]}, headers=outsider
    )
    assert r.status_code == 404, r.text
    assert (await http.get("/v1/approvals?status=all", headers=outsider)).json()["items"] == []

    r = await decide(http, dev, "carol", pid, "approve", {"operation_hash": state["operation_hash"], "approver": "bob"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "approver", r.text  # identity is the key's
    r = await decide(http, dev, "carol", pid, "approve", {"operation_hash": "0x1234"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "operation_hash", r.text
    r = await decide(
        http,
        dev,
        "carol",
        pid,
        "approve",
        {"operation_hash": state["operation_hash"]},
        **{"X-Paygent-Channel": "temporal"},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "X-Paygent-Channel", r.text

    r = await decide(http, dev, "bob", pid, "reject", {"reason": "unknown vendor"})
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.text
    final = await wait_final(http, dev, pid)
    assert final["status"] == "cancelled" and "approval rejected" in final["failure_reason"], final
    assert "unknown vendor" in final["failure_reason"]
    r = await decide(http, dev, "carol", pid, "approve", {"operation_hash": state["operation_hash"]})
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["type"] == "ApprovalClosed" and "already rejected by bob" in error["message"], error


async def test_an_edit_clears_approvals_and_makes_the_old_hash_stale(http, dev, db_engine, token_address):
    pid = await pay(http, dev, "5000")
    old = (await approval(http, dev, pid))["operation_hash"]
    r = await decide(http, dev, "bob", pid, "approve", {"operation_hash": old})
    assert r.status_code == 200 and r.json()["approvals_had"] == 1, r.text

    r = await http.post(
        f"/v1/payments/{pid}/edit", json={"operation_hash": old, "amount": "6000"}, headers=auth(dev, "bob")
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text  # bob may not request
    r = await http.post(
        f"/v1/payments/{pid}/edit", json={"operation_hash": old, "amount": "6000.5"}, headers=auth(dev, "alice")
    )
    assert r.status_code == 200, r.text
    new = r.json()["operation_hash"]
    assert new != old and r.json()["approvals_had"] == 0 and r.json()["status"] == "pending"
    state = await approval(http, dev, pid)
    assert state["operation"]["amount"] == "6000.5" and state["approvals"] == [] and old in state["previous_hashes"]

    r = await decide(http, dev, "carol", pid, "approve", {"operation_hash": old})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["type"] == "StaleOperation" and "stale" in r.json()["error"]["message"]
    r = await http.post(
        f"/v1/payments/{pid}/edit", json={"operation_hash": new, "amount": "12.5.0"}, headers=auth(dev, "alice")
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "amount", r.text
    for to, reason in ((dev["wallets"]["treasury"]["address"], "paying wallet"), (token_address, "token contract")):
        r = await http.post(f"/v1/payments/{pid}/edit", json={"operation_hash": new, "to": to}, headers=auth(dev))
        assert r.status_code == 422 and r.json()["error"]["field"] == "to" and reason in r.text, r.text
    # the audit row follows the answer (before the approval changes again): wait for it, then it is exactly one
    edits = await until(lambda: audit_of(db_engine, pid, "approval.edit"), lambda rows: len(rows) >= 1)
    assert edits == [("approval.edit", "alice", "api")]
    r = await decide(http, dev, "alice", pid, "cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text


async def test_fifty_concurrent_approvals_from_three_approvers_count_three(http, dev, db_engine):
    pid = await pay(http, dev, "20000")  # above 10,000: 3 of 3, then a 1-hour time-lock
    op_hash = (await approval(http, dev, pid))["operation_hash"]
    users = ["bob", "carol", "dave"]
    answers = await asyncio.gather(
        *(decide(http, dev, users[i % 3], pid, "approve", {"operation_hash": op_hash}) for i in range(50))
    )
    assert [r.status_code for r in answers] == [200] * 50, [r.text for r in answers if r.status_code != 200]
    assert sum(r.json()["counted"] for r in answers) == 3
    state = await approval(http, dev, pid)
    assert state["approvals_had"] == 3 and sorted(state["approved_by"]) == users
    assert state["status"] == "time_locked"
    approves = await until(lambda: audit_of(db_engine, pid, "approval.approve"), lambda rows: len(rows) >= 3)
    assert len(approves) == 3

    key = {"Idempotency-Key": "retry-1"}  # a retried request is answered once, and the same way
    first = await decide(http, dev, "dave", pid, "cancel", {"reason": "cleanup"}, **key)
    second = await decide(http, dev, "dave", pid, "cancel", {"reason": "cleanup"}, **key)
    assert first.status_code == second.status_code == 200 and first.json() == second.json(), second.text
    assert (await wait_final(http, dev, pid))["status"] == "cancelled"


async def test_no_decision_before_the_timeout_expires_it_and_releases_the_reservation(
    http, dev, app_settings, db_engine
):
    wallet = await wallet_with_policy(http, dev, app_settings, tiers(timeout=2))
    pid = await pay(http, dev, "500", wallet_id=wallet["id"])
    final = await wait_final(http, dev, pid, timeout=30)
    assert final["status"] == "cancelled" and "expired" in final["failure_reason"], final
    await until(lambda: reservation_status(db_engine, pid), lambda s: s == "released")
    state = await approval(http, dev, pid)
    assert state["status"] == "expired" and state["decided_by"] == "system"
    r = await decide(http, dev, "bob", pid, "approve", {"operation_hash": state["operation_hash"]})
    assert r.status_code == 409 and "already expired" in r.json()["error"]["message"], r.text
    assert (await payment(http, dev, pid))["tx_hash"] is None


async def test_pending_list_is_newest_first_and_pages_with_a_cursor(http, dev):
    older, newer = await pay(http, dev, "300"), await pay(http, dev, "400")
    seen, cursor = [], None
    while True:
        params = {"status": "pending", "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/v1/approvals", params=params, headers=auth(dev, "dave"))).json()
        assert len(page["items"]) <= 1
        seen += [a["approval_id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen.index(newer) < seen.index(older) and len(seen) == len(set(seen))
    r = await http.get("/v1/approvals", params={"cursor": "not-a-cursor"}, headers=auth(dev, "dave"))
    assert r.status_code == 422 and r.json()["error"]["field"] == "cursor", r.text
    for pid in (older, newer):
        assert (await decide(http, dev, "alice", pid, "cancel")).status_code == 200
