"""A terminate (`temporal workflow terminate`, the Web UI's Terminate) runs no workflow code: the reconcile tick's
orphan sweep ends the rows left open, releasing the reservation unless a signed transaction may still land.
Until then every request against the closed workflow answers 409 with the state, never 500."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from temporalio.client import WorkflowExecutionStatus

from paygent.chain.rpc import async_web3
from paygent.db.schema import approvals
from paygent.domain.payment import RECEIPT_WAIT_GAVE_UP
from tests.api.helpers import auth, create, new_recipient, payment_body
from tests.api.temporal_ops import audit, held_figure_matches_rows, idle_queue_api, reservation, row, sweeping_worker
from tests.api.test_worker_crash import _wait_row
from tests.approvals.helpers import approval, decide, pay, tiers, until, wallet_with_policy
from workflows import reconcile_types as r
from workflows.reconcile import ReconcileWorkflow


async def _terminate(client, workflow_id: str) -> None:
    handle = client.get_workflow_handle(workflow_id)
    await handle.terminate(reason="operator: stuck")
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED


async def _tick(app_settings, client) -> None:
    """One reconcile tick, as the schedule starts it, on a worker that sweeps without a grace period."""
    async with sweeping_worker(app_settings, client) as queue:
        await client.execute_workflow(
            ReconcileWorkflow.run,
            r.ReconcileInput(),
            id=f"reconcile-test-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
            result_type=r.ReconcileResult,
        )


async def test_terminate_at_each_stage_then_the_sweep_ends_the_rows(http, dev, app_settings, db_engine, temporal_env):
    client = temporal_env.client
    w3 = async_web3(app_settings.rpc_url)
    # awaiting approval (the dev policy wants one approver above 100)
    waiting = await pay(http, dev, "500")
    # time-locked
    wallet = await wallet_with_policy(http, dev, app_settings, tiers(timelock=3600))
    locked = await pay(http, dev, "500", wallet_id=wallet["id"])
    state = await approval(http, dev, locked, "bob")
    for who in ("bob", "carol"):
        assert (await decide(http, dev, who, locked, "approve", {"operation_hash": state["operation_hash"]})).is_success
    await _wait_row(db_engine, locked, lambda p: p["status"] == "time_locked")
    # submitted: signed and broadcast, not mined
    await w3.provider.make_request("evm_setAutomine", [False])
    try:
        sent = (await create(http, dev, payment_body(dev, new_recipient(), "1"))).json()["id"]
        await _wait_row(db_engine, sent, lambda p: p["status"] == "submitted")
        for pid in (waiting, locked, sent):
            await _terminate(client, f"payment-{pid}")
    finally:
        await w3.provider.make_request("evm_setAutomine", [True])
    # pending: started on a queue no worker polls, terminated before its first step
    async with idle_queue_api(app_settings, client) as (idle_http, _):
        pending = (await create(idle_http, dev, payment_body(dev, new_recipient(), "1"))).json()["id"]
        await _terminate(client, f"payment-{pending}")

    # before the sweep: the rows are open and every request answers 409 with the state, never 500
    assert (await row(db_engine, waiting))["status"] == "awaiting_approval"
    refused = await http.post(f"/v1/payments/{waiting}/cancel", headers=auth(dev))
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "workflow_closed"
    assert (
        "awaiting_approval" in refused.json()["error"]["message"] and "terminated" in refused.json()["error"]["message"]
    )

    await _tick(app_settings, client)

    for pid, had_reservation in ((waiting, True), (locked, True), (pending, False)):
        payment = await row(db_engine, pid)
        assert payment["status"] == "cancelled", payment
        assert "its workflow was terminated: operator: stuck" in payment["failure_reason"]
        assert await reservation(db_engine, pid) == ("released" if had_reservation else None)
        [(_, channel, data)] = await audit(db_engine, pid, "payment.cancelled")
        assert channel == "temporal" and data["reservation"] == "released" and data["swept"] is True
    # the signed transfer may still land: left to the reconciler, its reservation held
    payment = await row(db_engine, sent)
    assert payment["status"] == "submitted" and RECEIPT_WAIT_GAVE_UP in payment["details"]
    assert await reservation(db_engine, sent) == "reserved"
    [(_, channel, data)] = await audit(db_engine, sent, "payment.receipt_wait_gave_up")
    assert channel == "temporal" and data["reservation"] == "held"
    # the approvals the terminated payments waited for are closed too
    for pid in (waiting, locked):
        closed = await until(lambda pid=pid: approval(http, dev, pid, "bob"), lambda a: a["status"] == "cancelled")
        assert closed["awaiting"] == []
    # a second tick writes nothing more; the next ticks settle the signed transfer from the chain
    await w3.provider.make_request("evm_mine", [])
    await _tick(app_settings, client)
    assert len(await audit(db_engine, waiting, "payment.cancelled")) == 1
    await until(lambda: row(db_engine, sent), lambda p: p["status"] == "confirmed", timeout=60)
    assert await reservation(db_engine, sent) == "committed"
    await held_figure_matches_rows(http, db_engine)


async def test_a_terminated_approval_answers_409_and_is_swept(http, dev, app_settings, db_engine, temporal_env):
    client = temporal_env.client
    pid = await pay(http, dev, "500")
    state = await approval(http, dev, pid, "bob")
    await _terminate(client, f"approval-{pid}")
    # the payment sees its approval fail: it ends failed, its reservation released
    await until(lambda: row(db_engine, pid), lambda p: p["status"] == "failed")
    assert await reservation(db_engine, pid) == "released"
    late = await decide(http, dev, "bob", pid, "approve", {"operation_hash": state["operation_hash"]})
    assert late.status_code == 409, late.text
    assert "terminated" in late.json()["error"]["message"]

    await _tick(app_settings, client)
    swept = await audit(db_engine, pid, "approval.decided")
    assert [(c, d["status"]) for _, c, d in swept if d.get("swept")] == [("temporal", "cancelled")]
    async with db_engine.connect() as conn:
        status = await conn.scalar(sa.select(approvals.c.status).where(approvals.c.id == pid))
    assert status == "cancelled"
    await held_figure_matches_rows(http, db_engine)
