"""A cancel sent with Temporal's own tools (the Web UI's "Request Cancellation", `temporal workflow cancel`,
`handle.cancel()`): before signing the payment ends `cancelled` with its reservation released and the cancel
audited with channel `temporal`; after signing it is refused, recorded, and the payment settles."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError

from paygent.chain.rpc import async_web3
from tests.api.helpers import auth, create, new_recipient, payment_body, transfers_to, wait_final
from tests.api.temporal_ops import audit, held_figure_matches_rows, idle_queue_api, reservation, row
from tests.api.test_worker_crash import _wait_row
from tests.approvals.helpers import approval, decide, pay, tiers, until, wallet_with_policy


async def _cancel_with_temporal(client, workflow_id: str) -> None:
    handle = client.get_workflow_handle(workflow_id)
    await handle.cancel(reason="operator: wrong vendor")
    with pytest.raises(WorkflowFailureError) as ended:
        await handle.result()
    assert isinstance(ended.value.cause, CancelledError)  # the Web UI shows it Canceled, as the operator asked


async def _assert_cancelled_and_released(http, dev, db_engine, pid: str, *, reserved: bool = True) -> None:
    final = await wait_final(http, dev, pid)
    assert final["status"] == "cancelled", final
    assert "cancelled with Temporal: operator: wrong vendor" in final["failure_reason"]
    assert final["status_history"][-1]["status"] == "cancelled"
    assert await reservation(db_engine, pid) == ("released" if reserved else None)
    [(actor, channel, data)] = await audit(db_engine, pid, "payment.cancelled")
    assert (actor, channel) == ("temporal", "temporal") and "wrong vendor" in data["reason"]
    await held_figure_matches_rows(http, db_engine)
    again = await http.post(f"/v1/payments/{pid}/cancel", headers=auth(dev))
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


async def test_temporal_cancel_while_awaiting_approval(http, dev, db_engine, temporal_env):
    pid = await pay(http, dev, "500")  # the dev policy wants one approver above 100
    assert await reservation(db_engine, pid) == "reserved"
    await _cancel_with_temporal(temporal_env.client, f"payment-{pid}")
    await _assert_cancelled_and_released(http, dev, db_engine, pid)
    closed = await until(lambda: approval(http, dev, pid, "bob"), lambda a: a["status"] == "cancelled")
    assert closed["awaiting"] == []


async def test_temporal_cancel_while_time_locked(http, dev, app_settings, db_engine, temporal_env):
    wallet = await wallet_with_policy(http, dev, app_settings, tiers(timelock=3600))
    pid = await pay(http, dev, "500", wallet_id=wallet["id"])
    state = await approval(http, dev, pid, "bob")
    for who in ("bob", "carol"):
        r = await decide(http, dev, who, pid, "approve", {"operation_hash": state["operation_hash"]})
        assert r.status_code == 200, r.text
    await _wait_row(db_engine, pid, lambda p: p["status"] == "time_locked")
    await _cancel_with_temporal(temporal_env.client, f"payment-{pid}")
    await _assert_cancelled_and_released(http, dev, db_engine, pid)


async def test_temporal_cancel_while_pending(dev, app_settings, db_engine, temporal_env):
    async with idle_queue_api(app_settings, temporal_env.client) as (http, start_worker):
        r = await create(http, dev, payment_body(dev, new_recipient(), "1"))
        pid = r.json()["id"]
        assert (await row(db_engine, pid))["status"] == "pending"
        handle = temporal_env.client.get_workflow_handle(r.json()["workflow_id"])
        await handle.cancel(reason="operator: wrong vendor")
        await start_worker()  # the payment's first step sees the cancel: nothing reserved, nothing signed
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        await _assert_cancelled_and_released(http, dev, db_engine, pid, reserved=False)


async def test_temporal_cancel_after_broadcast_is_refused_and_the_payment_settles(
    http, dev, app_settings, db_engine, temporal_env
):
    w3 = async_web3(app_settings.rpc_url)
    to = new_recipient()
    await w3.provider.make_request("evm_setAutomine", [False])
    try:
        r = await create(http, dev, payment_body(dev, to, "1"))
        pid = r.json()["id"]
        await _wait_row(db_engine, pid, lambda p: p["status"] == "submitted")
        handle = temporal_env.client.get_workflow_handle(r.json()["workflow_id"])
        await handle.cancel(reason="operator: too late?")
        refused = await until(lambda: audit(db_engine, pid, "payment.cancel_refused"), bool)
    finally:
        await w3.provider.make_request("evm_setAutomine", [True])
        await w3.provider.make_request("evm_mine", [])
    [(actor, channel, data)] = refused
    assert (actor, channel) == ("temporal", "temporal")
    assert data["asked"] == "operator: too late?" and "cannot be recalled" in data["reason"]
    state = await handle.result()  # the workflow completes: the cancel was refused, not swallowed
    assert state["status"] == "confirmed"
    final = await wait_final(http, dev, pid)
    assert final["status"] == "confirmed"
    assert "payment.cancel_refused" in [h["action"] for h in final["status_history"]]
    assert await reservation(db_engine, pid) == "committed"
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 1
    await held_figure_matches_rows(http, db_engine)
