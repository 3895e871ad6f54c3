"""A run whose payment needs 2 approvals: it waits, streams `approval_requested` (bound to the tool call),
resumes once bob and carol approve, and answers with the tx hash; a rejection is reported to the model;
cancelling the run while it waits cancels the payment and releases its reservation."""

from __future__ import annotations

import asyncio
import uuid

import pytest_asyncio
import sqlalchemy as sa
from temporalio.service import RPCError

from paygent.db.policies import save_policy
from paygent.db.reservations import reservations
from paygent.db.schema import payments
from paygent.domain.approval_policy import ApprovalPolicy, Tier
from tests.agents.helpers import of_type, sse_events, start_run, types
from tests.api.helpers import auth, funded_wallet, new_recipient, token_balance, transfers_to
from workflows.approval_client import get_state, send_decision
from workflows.approval_types import ApprovalView, ApproveRequest, RejectRequest

TWO_OF_THREE = ApprovalPolicy(
    tiers=[
        Tier(max_amount_atomic=100 * 10**6, approvals_required=0),
        Tier(max_amount_atomic=None, approvals_required=2, approvers=["bob", "carol", "dave"]),  # no time-lock
    ]
)


@pytest_asyncio.fixture(scope="module")
async def gated_wallet(http, dev, app_settings, db_engine) -> dict:
    """A wallet of its own (so no other test meets its policy): above 100 USDC, 2 of bob/carol/dave."""
    wallet = await funded_wallet(http, dev, app_settings, 1_000)
    async with db_engine.begin() as conn:
        await save_policy(conn, dev["tenant"]["id"], TWO_OF_THREE, actor="test", channel="api", wallet_id=wallet["id"])
    return wallet


async def approval_state(client, payment_id: str, timeout: float = 10) -> ApprovalView:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await get_state(client, payment_id)
        except RPCError:  # the approval workflow is being started by the payment
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def run_with_decisions(http, dev, temporal_env, message: str, wallet: dict, decide) -> list[dict]:
    run = await start_run(http, dev, message, wallet_id=wallet["id"])
    seen_waiting: list[str] = []

    async def on_event(event: dict) -> None:
        if event["type"] == "approval_requested":
            r = await http.get(f"/v1/agent-runs/{run['id']}", headers=auth(dev))
            seen_waiting.append(r.json()["status"])
            view = await approval_state(temporal_env.client, event["data"]["payment_id"])
            await decide(view)

    events = await sse_events(http, dev, run["id"], on_event=on_event, timeout=60)
    assert seen_waiting == ["awaiting_approval"]
    return events


async def test_run_waits_for_two_approvals_then_pays_and_answers_with_the_tx_hash(
    http, dev, temporal_env, gated_wallet, app_settings
):
    to = new_recipient()

    async def approve_twice(view: ApprovalView) -> None:
        assert view.approvals_needed == 2 and view.operation.amount_atomic == 150 * 10**6
        for who in ("bob", "carol"):
            await send_decision(
                temporal_env.client,
                view.approval_id,
                "approve",
                ApproveRequest(actor=who, channel="api", operation_hash=view.operation_hash),
            )

    events = await run_with_decisions(
        http, dev, temporal_env, f"pay 150 USDC to {to} for the audit", gated_wallet, approve_twice
    )
    executing = of_type(events, "tool_executing")[0]["data"]
    requested = of_type(events, "approval_requested")[0]["data"]
    assert requested["tool_call_id"] == executing["tool_call_id"] and requested["arguments"] == executing["arguments"]
    assert requested["status"] == "awaiting_approval"
    assert of_type(events, "approval_decided")[0]["data"]["decision"] == "approved"
    assert (
        types(events).index("approval_requested")
        < types(events).index("approval_decided")
        < types(events).index("tool_completed")
    )
    answer = events[-1]["data"]["answer"]
    assert events[-1]["type"] == "agent_completed" and "confirmed. Transaction: 0x" in answer
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 150 * 10**6


async def test_a_rejected_payment_is_reported_back_as_the_tool_result(
    http, dev, temporal_env, gated_wallet, app_settings
):
    to = new_recipient()

    async def reject(view: ApprovalView) -> None:
        await send_decision(
            temporal_env.client,
            view.approval_id,
            "reject",
            RejectRequest(actor="dave", channel="api", reason="not in the budget"),
        )

    events = await run_with_decisions(http, dev, temporal_env, f"pay 300 USDC to {to}", gated_wallet, reject)
    assert of_type(events, "approval_decided")[0]["data"]["decision"] == "rejected"
    result = of_type(events, "tool_completed")[0]["data"]
    assert result["ok"] is False and "rejected" in result["result"] and "not in the budget" in result["result"]
    assert events[-1]["type"] == "agent_completed" and "rejected" in events[-1]["data"]["answer"]
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 0


async def test_cancelling_a_run_that_waits_for_approval_cancels_its_payment_and_frees_the_budget(
    http, dev, gated_wallet, db_engine, app_settings
):
    to = new_recipient()
    run = await start_run(http, dev, f"pay 200 USDC to {to}", wallet_id=gated_wallet["id"])

    async def cancel_when_waiting(event: dict) -> None:
        if event["type"] == "approval_requested":
            r = await http.post(f"/v1/agent-runs/{run['id']}/cancel", headers=auth(dev))
            assert r.status_code == 202

    events = await sse_events(http, dev, run["id"], on_event=cancel_when_waiting)
    failed = events[-1]["data"]
    assert events[-1]["type"] == "agent_failed" and failed["status"] == "cancelled"
    assert failed["payment_status"] == "cancelled"
    assert of_type(events, "approval_decided")[0]["data"]["decision"] == "cancelled"
    async with db_engine.connect() as conn:
        payment = (
            (await conn.execute(sa.select(payments).where(payments.c.id == uuid.UUID(failed["payment_id"]))))
            .mappings()
            .one()
        )
        held = await conn.scalar(sa.select(reservations.c.status).where(reservations.c.payment_id == payment["id"]))
    assert payment["status"] == "cancelled" and held == "released"
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 0
