"""A session whose budget the wallet's tier wants approved: approved once (the ApprovalWorkflow child a payment
uses), then its requests are paid without asking again; and the live view in Temporal."""

from __future__ import annotations

from temporalio.api.sdk.v1 import WorkflowMetadata

from tests.api.helpers import auth, token_balance
from tests.approvals.helpers import decide, tiers, until, wallet_with_policy
from tests.x402.sessions import fetch, reservation, start, status


async def test_a_budget_above_the_tier_is_approved_once_then_spent(http, dev, paid_service, app_settings, temporal_env):
    wallet = await wallet_with_policy(http, dev, app_settings, tiers())  # above 100: 2 of bob, carol, dave
    body = {
        "wallet_id": wallet["id"],
        "budget": "150",
        "max_price": "0.02",
        "ttl_seconds": 120,
        "origins": [paid_service.url],
    }
    r = await start(http, dev, body)
    assert r.status_code == 201, r.text
    session = r.json()
    sid = session["id"]
    assert session["status"] == "awaiting_approval"

    early = await fetch(http, dev, sid, f"{paid_service.url}/weather")
    assert early.status_code == 409 and early.json()["error"]["code"] == "session_not_active", early.text

    approval = await until(
        lambda: http.get(f"/v1/approvals/{sid}", headers=auth(dev, "bob")), lambda a: a.status_code == 200
    )
    assert approval.json()["operation"]["amount"] == "150", approval.text
    for approver in ("bob", "carol"):
        r = await decide(http, dev, approver, sid, "approve", {"operation_hash": approval.json()["operation_hash"]})
        assert r.status_code == 200, r.text
    await until(lambda: status(http, dev, sid), lambda s: s["status"] == "active")

    for _ in range(2):  # no further approval: each request is paid at once
        r = await fetch(http, dev, sid, f"{paid_service.url}/weather")
        assert r.status_code == 200 and r.json()["paid"]["amount"] == "0.01", r.text
    refused = await fetch(http, dev, sid, f"{paid_service.url}/premium")
    assert refused.status_code == 409
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 20_000

    # the live view: the Temporal UI's summary and current details
    handle = temporal_env.client.get_workflow_handle(session["workflow_id"])
    summary = await (await handle.describe()).static_summary()
    assert summary is not None and "budget 150 USDC" in summary
    details = (await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)).current_details
    assert "spent 0.02" in details and "Requests: 3" in details and "Last error:" in details
    assert "/premium: the server asks 2000000, above the session's price ceiling" in details

    r = await http.delete(f"/v1/x402/sessions/{sid}", headers=auth(dev))
    assert r.json()["status"] == "closed" and r.json()["spent"] == "0.02"


async def test_a_session_that_expires_while_awaiting_approval_ends_and_releases(
    http, dev, paid_service, app_settings, db_engine
):
    wallet = await wallet_with_policy(http, dev, app_settings, tiers())
    body = {"wallet_id": wallet["id"], "budget": "150", "ttl_seconds": 2, "origins": [paid_service.url]}
    session = (await start(http, dev, body)).json()
    assert session["status"] == "awaiting_approval"
    final = await until(lambda: status(http, dev, session["id"]), lambda s: s["status"] == "expired", timeout=15)
    assert final["reason"] == "ended before it was approved" and final["remaining"] == "0"
    assert await reservation(db_engine, session["id"]) == ("released", 150_000_000)
    approval = await until(
        lambda: http.get(f"/v1/approvals/{session['id']}", headers=auth(dev, "bob")),
        lambda a: a.json()["status"] == "cancelled",
    )
    assert approval.status_code == 200
