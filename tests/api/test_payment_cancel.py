"""Cancelling a payment: refused with the reason once its transaction is signed and broadcast."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from paygent.chain.rpc import async_web3
from paygent.db.reservations import reservations
from tests.api.helpers import auth, create, new_recipient, payment_body, transfers_to, wait_final
from tests.api.test_worker_crash import _wait_row


async def test_cancel_after_broadcast_is_refused(http, dev, app_settings, db_engine):
    w3 = async_web3(app_settings.rpc_url)
    to = new_recipient()
    await w3.provider.make_request("evm_setAutomine", [False])
    try:
        r = await create(http, dev, payment_body(dev, to, "1"))
        pid = r.json()["id"]
        await _wait_row(db_engine, pid, lambda p: p["status"] == "submitted")
        refused = await http.post(f"/v1/payments/{pid}/cancel", headers=auth(dev), json={"reason": "changed mind"})
        assert refused.status_code == 409
        assert "submitted" in refused.json()["error"]["message"]
    finally:
        await w3.provider.make_request("evm_setAutomine", [True])
        await w3.provider.make_request("evm_mine", [])
    final = await wait_final(http, dev, pid)
    assert final["status"] == "confirmed"
    again = await http.post(f"/v1/payments/{pid}/cancel", headers=auth(dev))
    assert again.status_code == 409 and "already confirmed" in again.json()["error"]["message"]
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 1


async def test_only_requester_or_admin_may_cancel(http, dev):
    r = await create(http, dev, payment_body(dev, new_recipient(), "1"))
    pid = r.json()["id"]
    denied = await http.post(f"/v1/payments/{pid}/cancel", headers=auth(dev, "bob"))
    assert denied.status_code == 403 and "requester or admin role" in denied.json()["error"]["message"]
    assert (await wait_final(http, dev, pid))["status"] == "confirmed"


async def test_cancel_while_awaiting_approval_releases_the_reservation(http, dev, app_settings, db_engine):
    to = new_recipient()
    r = await create(http, dev, payment_body(dev, to, "500"))  # the dev policy wants one approver above 100
    pid = r.json()["id"]
    await _wait_row(db_engine, pid, lambda p: p["status"] == "awaiting_approval")
    cancelled = await http.post(f"/v1/payments/{pid}/cancel", headers=auth(dev), json={"reason": "wrong invoice"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert "cancelled by alice via api: wrong invoice" in cancelled.json()["failure_reason"]
    final = await wait_final(http, dev, pid)
    assert final["status"] == "cancelled" and final["tx_hash"] is None
    async with db_engine.connect() as conn:
        status = await conn.scalar(sa.select(reservations.c.status).where(reservations.c.payment_id == uuid.UUID(pid)))
    assert status == "released"
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 0
    # the approval it was waiting for is closed too
    assert await _approval_status(http, dev, pid) in (None, "cancelled")


async def _approval_status(http, dev, pid):
    """The approval's status as the API reports it, when the approvals API is present."""
    r = await http.get(f"/v1/approvals/{pid}", headers=auth(dev))
    return r.json().get("status") if r.status_code == 200 else None
