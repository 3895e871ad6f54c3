"""A payment end to end through HTTP, the worker and anvil: balances, rows, audit, idempotency."""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa

from paygent.db.schema import audit_log, ledger_entries, payments
from tests.api.helpers import (
    auth,
    create,
    funded_wallet,
    new_recipient,
    payment_body,
    token_balance,
    transfers_to,
    wait_final,
)


async def test_payment_settles_on_chain(http, dev, app_settings, db_engine):
    to = new_recipient()
    treasury = dev["wallets"]["treasury"]["address"]
    before = await token_balance(app_settings.rpc_url, app_settings.token_address, treasury)

    r = await create(http, dev, payment_body(dev, to, "12.5"))
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert set(accepted) == {"id", "status", "workflow_id"}
    assert accepted["workflow_id"] == f"payment-{accepted['id']}"

    final = await wait_final(http, dev, accepted["id"])
    assert final["status"] == "confirmed", final
    assert final["amount"] == "12.5" and final["amount_atomic"] == "12500000"
    assert final["to"] == to and final["tx_hash"].startswith("0x") and final["block_number"] > 0
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 12_500_000
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, treasury) == before - 12_500_000

    async with db_engine.connect() as conn:
        ledger = (
            await conn.execute(
                sa.select(ledger_entries.c.account, ledger_entries.c.amount_atomic).where(
                    ledger_entries.c.payment_id == uuid.UUID(accepted["id"])
                )
            )
        ).all()
        actions = (
            await conn.scalars(
                sa.select(audit_log.c.action).where(audit_log.c.subject_id == accepted["id"]).order_by(audit_log.c.id)
            )
        ).all()
    assert sorted((a, int(v)) for a, v in ledger) == sorted(
        [(f"wallet:{dev['wallets']['treasury']['id']}", -12_500_000), (f"external:{to}", 12_500_000)]
    )
    assert actions[0] == "payment.requested" and "payment.signed" in actions and actions[-1] == "payment.confirmed"


async def test_same_idempotency_key_twice_is_one_payment(http, dev, app_settings):
    to = new_recipient()
    key = uuid.uuid4().hex
    first = await create(http, dev, payment_body(dev, to, "2"), key=key)
    second = await create(http, dev, payment_body(dev, to, "2"), key=key)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    await wait_final(http, dev, first.json()["id"])
    third = await create(http, dev, payment_body(dev, to, "2"), key=key)  # after completion: same answer
    assert third.status_code == 202 and third.json()["id"] == first.json()["id"]
    assert third.json()["status"] == "confirmed"
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 1


async def test_twenty_concurrent_requests_one_key_one_transfer(http, dev, app_settings, db_engine):
    to = new_recipient()
    key = uuid.uuid4().hex
    answers = await asyncio.gather(*(create(http, dev, payment_body(dev, to, "3"), key=key) for _ in range(20)))
    assert {a.status_code for a in answers} == {202}
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    final = await wait_final(http, dev, ids.pop())
    assert final["status"] == "confirmed"
    async with db_engine.connect() as conn:
        rows = await conn.scalar(sa.select(sa.func.count()).select_from(payments).where(payments.c.to_address == to))
    assert rows == 1
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 1
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 3_000_000


async def test_key_reused_for_a_different_request_is_409(http, dev):
    key = uuid.uuid4().hex
    to = new_recipient()
    assert (await create(http, dev, payment_body(dev, to, "1"), key=key)).status_code == 202
    r = await create(http, dev, payment_body(dev, to, "2"), key=key)
    assert r.status_code == 409
    assert r.json()["error"]["field"] == "Idempotency-Key"


async def test_transfer_that_reverts_ends_failed_with_reason(http, dev, app_settings):
    to = new_recipient()
    wallet = await funded_wallet(http, dev, app_settings, 1)
    r = await create(http, dev, {**payment_body(dev, to, "5"), "wallet_id": wallet["id"]})  # more than it holds
    assert r.status_code == 202
    final = await wait_final(http, dev, r.json()["id"])
    assert final["status"] == "failed"
    assert "exceeds balance" in final["failure_reason"]
    assert final["tx_hash"] is not None  # it was mined, and reverted
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 0


async def test_other_tenant_cannot_read_a_payment(http, dev, db_engine):
    from paygent.db.accounts import create_user, ensure_tenant

    r = await create(http, dev, payment_body(dev, new_recipient(), "1"))
    async with db_engine.begin() as conn:
        tenant = await ensure_tenant(conn, f"other-{uuid.uuid4().hex[:6]}")
        _, key = await create_user(conn, tenant, "mallory", ["requester"])
    other = await http.get(f"/v1/payments/{r.json()['id']}", headers={"Authorization": f"Bearer {key}"})
    assert other.status_code == 404
    mine = await http.get(f"/v1/payments/{r.json()['id']}", headers=auth(dev))
    assert mine.status_code == 200
