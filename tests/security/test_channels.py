"""Honest channels on the real dev server: the audit log says how a decision came in, not what its sender claims.

A Signal (`temporal workflow signal`) is audited `temporal` even when its body says "api"; an Update sent straight
to Temporal claiming "api" is audited `temporal` too (only the API's attested Updates record api/cli); with
PAYGENT_SIGNAL_DECISIONS off, a Signal decision is refused and audited as refused, and the approval is unmoved.
"""

from __future__ import annotations

import asyncio
import json

import sqlalchemy as sa

from paygent.db.schema import audit_log
from paygent.paths import temporal_cli
from tests.api.helpers import wait_final
from tests.approvals.helpers import (
    approval,
    audit_of,
    decide,
    pay,
    reservation_status,
    tiers,
    until,
    wallet_with_policy,
)
from workflows.approval_types import ApproveRequest, DecisionResult, approval_workflow_id


async def temporal_signal(settings, workflow_id: str, name: str, body: dict) -> None:
    """Exactly what an operator with cluster access types."""
    proc = await asyncio.create_subprocess_exec(
        str(temporal_cli()),
        "workflow",
        "signal",
        "--address",
        settings.temporal_address,
        "--namespace",
        settings.temporal_namespace,
        "--workflow-id",
        workflow_id,
        "--name",
        name,
        "--input",
        json.dumps(body),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


async def audit_data(engine, approval_id: str, action: str) -> list[tuple[str, str, dict]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(audit_log.c.actor, audit_log.c.channel, audit_log.c.data)
            .where(
                audit_log.c.subject_type == "approval",
                audit_log.c.subject_id == approval_id,
                audit_log.c.action == action,
            )
            .order_by(audit_log.c.id)
        )
        return [tuple(r) for r in rows]


async def test_signal_claiming_api_is_audited_as_temporal(http, dev, app_settings, db_engine):
    wallet = await wallet_with_policy(http, dev, app_settings, tiers())
    pid = await pay(http, dev, "250", wallet_id=wallet["id"])
    view = await approval(http, dev, pid)
    await temporal_signal(
        app_settings,
        approval_workflow_id(pid),
        "approve",
        {"approver": "bob", "operation_hash": view["operation_hash"], "channel": "api"},
    )
    await until(lambda: audit_of(db_engine, pid, "approval.approve"), lambda rows: len(rows) == 1)
    ok = await decide(http, dev, "carol", pid, "approve", {"operation_hash": view["operation_hash"]})
    assert ok.status_code == 200, ok.text
    assert (await wait_final(http, dev, pid))["status"] == "confirmed"
    assert await audit_of(db_engine, pid, "approval.approve") == [
        ("approval.approve", "bob", "temporal"),
        ("approval.approve", "carol", "api"),
    ]
    shown = await approval(http, dev, pid)
    assert [(a["approver"], a["channel"]) for a in shown["approvals"]] == [("bob", "temporal"), ("carol", "api")]


async def test_update_sent_straight_to_temporal_cannot_claim_api(http, dev, app_settings, db_engine, temporal_env):
    wallet = await wallet_with_policy(http, dev, app_settings, tiers())
    pid = await pay(http, dev, "250", wallet_id=wallet["id"])
    view = await approval(http, dev, pid)
    handle = temporal_env.client.get_workflow_handle(approval_workflow_id(pid))
    result = await handle.execute_update(
        "approve",
        ApproveRequest(
            actor="bob", channel="api", operation_hash=view["operation_hash"], attestation="0" * 64
        ),  # a forged attestation does not help
        id="forged-1",
        result_type=DecisionResult,
    )
    assert result.counted
    rows = await until(lambda: audit_data(db_engine, pid, "approval.approve"), lambda rows: len(rows) == 1)
    actor, channel, data = rows[0]
    assert (actor, channel, data["claimed_channel"]) == ("bob", "temporal", "api")
    cancelled = await decide(http, dev, "alice", pid, "cancel", {"reason": "test done"})
    assert cancelled.status_code == 200, cancelled.text
    assert (await wait_final(http, dev, pid))["status"] == "cancelled"
    assert ("approval.cancel", "alice", "api") in await audit_of(db_engine, pid)


async def test_signal_decisions_off_refuses_and_audits_the_refusal(http, dev, app_settings, db_engine):
    wallet = await wallet_with_policy(http, dev, app_settings, tiers())
    pid = await pay(http, dev, "250", wallet_id=wallet["id"])
    view = await approval(http, dev, pid)
    app_settings.signal_decisions = False  # what PAYGENT_SIGNAL_DECISIONS=off gives the worker
    try:
        await temporal_signal(
            app_settings,
            approval_workflow_id(pid),
            "approve",
            {"approver": "bob", "operation_hash": view["operation_hash"], "channel": "cli"},
        )
        rows = await until(lambda: audit_data(db_engine, pid, "approval.signal_refused"), lambda rows: len(rows) == 1)
    finally:
        app_settings.signal_decisions = True
    actor, channel, data = rows[0]
    assert (actor, channel, data["type"], data["signal"]) == ("bob", "temporal", "SignalDecisionsOff", "approve")
    assert "PAYGENT_SIGNAL_DECISIONS=off" in data["reason"]
    after = await approval(http, dev, pid)
    assert (after["status"], after["approvals_had"]) == ("pending", 0)
    assert await audit_of(db_engine, pid, "approval.approve") == []
    # back on: the same Signal counts (audited as temporal)
    await temporal_signal(
        app_settings,
        approval_workflow_id(pid),
        "approve",
        {"approver": "bob", "operation_hash": view["operation_hash"]},
    )
    await until(lambda: audit_of(db_engine, pid, "approval.approve"), lambda rows: len(rows) == 1)
    assert await audit_of(db_engine, pid, "approval.approve") == [("approval.approve", "bob", "temporal")]
    assert (await decide(http, dev, "alice", pid, "cancel", {"reason": "done"})).status_code == 200
    assert (await wait_final(http, dev, pid))["status"] == "cancelled"
    assert await reservation_status(db_engine, pid) == "released"
