"""Delegation over HTTP (a live delegate sees and approves for the delegator; an ended delegation does not count)
and the CLI's other verbs as a user types them: show, revoke, edit, delegate, reject, and a refusal's exit code.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest_asyncio

from paygent.db.accounts import create_user
from tests.api.helpers import wait_final
from tests.approvals.helpers import approval, cli, decide, pay, until


@pytest_asyncio.fixture(scope="module")
async def erin(db_engine, dev) -> dict:
    """A user of the dev tenant who approves in no tier: she can only act as someone's delegate."""
    name = f"erin-{uuid.uuid4().hex[:4]}"
    async with db_engine.begin() as conn:
        _, key = await create_user(conn, uuid.UUID(dev["tenant"]["id"]), name, ["approver"])
    return {"name": name, "headers": {"Authorization": f"Bearer {key}"}}


async def _pending_for(http, headers) -> list[str]:
    r = await http.get("/v1/approvals", params={"status": "pending"}, headers=headers)
    assert r.status_code == 200, r.text
    return [a["approval_id"] for a in r.json()["items"]]


async def test_a_live_delegate_sees_and_approves_for_the_delegator_an_ended_one_does_not(http, dev, erin):
    pid = await pay(http, dev, "5000")
    op_hash = (await approval(http, dev, pid))["operation_hash"]
    assert pid not in await _pending_for(http, erin["headers"])

    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    r = await decide(http, dev, "bob", pid, "delegate", {"delegate": erin["name"], "until": soon})
    assert r.status_code == 200, r.text
    # the list is the approvals table, written just after the answer (the Query has it at once)
    await until(lambda: _pending_for(http, erin["headers"]), lambda ids: pid in ids)
    await until(lambda: _pending_for(http, erin["headers"]), lambda ids: pid not in ids)  # the delegation ended
    r = await http.post(f"/v1/approvals/{pid}/approve", json={"operation_hash": op_hash}, headers=erin["headers"])
    assert r.status_code == 403 and r.json()["error"]["type"] == "DelegationEnded", r.text

    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = await decide(http, dev, "dave", pid, "delegate", {"delegate": erin["name"], "until": later})
    assert r.status_code == 200, r.text
    r = await http.post(f"/v1/approvals/{pid}/approve", json={"operation_hash": op_hash}, headers=erin["headers"])
    assert r.status_code == 200 and r.json()["counted"], r.text
    state = await approval(http, dev, pid)
    assert state["approved_by"] == ["dave"] and state["approvals"][0]["approver"] == erin["name"]

    r = await decide(http, dev, "dave", pid, "delegate", {"delegate": "nobody-here", "until": later})
    assert r.status_code == 422 and r.json()["error"]["field"] == "delegate", r.text
    r = await decide(http, dev, "dave", pid, "delegate", {"delegate": erin["name"], "until": "2020-01-01T00:00:00Z"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "until", r.text
    assert (await decide(http, dev, "alice", pid, "cancel")).status_code == 200


async def test_cli_show_revoke_edit_delegate_reject(http, dev, api_url):
    def as_(user: str) -> list[str]:
        return ["--api-url", api_url, "--api-key", dev["users"][user]["api_key"]]

    pid = await pay(http, dev, "5000")
    shown = await cli("approvals", "show", pid, *as_("bob"))
    assert shown.code == 0 and "5000 USDC" in shown.out and "you may approve yes" in shown.out, shown

    assert (await cli("approve", pid, *as_("bob"))).code == 0
    revoked = await cli("revoke", pid, *as_("bob"))
    assert revoked.code == 0 and "0 of 2 approvals" in revoked.out, revoked

    edited = await cli("edit", pid, "--amount", "4500", "--memo", "corrected", *as_("alice"))
    assert edited.code == 0 and "4500 USDC" in edited.out, edited
    state = await approval(http, dev, pid)
    assert state["operation"]["memo"] == "corrected" and state["edits"] == 1
    refused = await cli("edit", pid, "--amount", "4000", *as_("bob"))
    assert refused.code == 1 and "403" in refused.err and "requester role" in refused.err, refused

    delegated = await cli("delegate", pid, "--to", "carol", "--until", "2099-01-01T00:00:00Z", *as_("dave"))
    assert delegated.code == 0 and "delegated to carol" in delegated.out, delegated
    rejected = await cli("reject", pid, "--reason", "wrong invoice", *as_("carol"))
    assert rejected.code == 0 and "wrong invoice" in rejected.out, rejected
    assert (await wait_final(http, dev, pid))["status"] == "cancelled"

    nobody = await cli("approvals", "list", "--api-url", api_url)
    assert nobody.code == 2 and "--as NAME" in nobody.err, nobody
