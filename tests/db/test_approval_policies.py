"""Approval policies in Postgres: wallet over tenant over the dev default; every change audited with the old one."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from paygent.db.policies import delete_policy, get_stored_policy, load_policy, save_policy
from paygent.db.schema import audit_log, tenants, wallets
from paygent.domain.approval_policy import ApprovalPolicy, Tier, default_dev_policy


@pytest.fixture
async def scope(db_engine):
    tenant_id, wallet_id = uuid.uuid4(), uuid.uuid4()
    async with db_engine.begin() as conn:
        await conn.execute(tenants.insert().values(id=tenant_id, name=f"policies-{tenant_id.hex[:8]}"))
        await conn.execute(
            wallets.insert().values(
                id=wallet_id,
                tenant_id=tenant_id,
                name="ops",
                address="0x" + uuid.uuid4().hex + "00000000",
                encrypted_key=b"\x00",
            )
        )
    return tenant_id, wallet_id


def strict(required: int) -> ApprovalPolicy:
    return ApprovalPolicy(
        tiers=[Tier(approvals_required=required, approvers=["bob", "carol", "dave"], timelock_seconds=60)]
    )


async def test_wallet_over_tenant_over_default_and_every_change_audited(db_engine, scope):
    tenant_id, wallet_id = scope
    async with db_engine.begin() as conn:
        assert await load_policy(conn, tenant_id, wallet_id) == default_dev_policy()
        assert await load_policy(conn, tenant_id, decimals=18) == default_dev_policy(18)
        await save_policy(conn, tenant_id, strict(1), actor="admin", channel="api")
        await save_policy(conn, tenant_id, strict(2), actor="admin", channel="cli")  # replaces, one row
        assert await load_policy(conn, tenant_id, wallet_id) == strict(2)
        await save_policy(conn, tenant_id, strict(3), actor="admin", channel="api", wallet_id=wallet_id)
        assert await load_policy(conn, tenant_id, wallet_id) == strict(3)
        assert await load_policy(conn, tenant_id) == strict(2)
        assert await delete_policy(conn, tenant_id, actor="admin", channel="api", wallet_id=wallet_id)
        assert not await delete_policy(conn, tenant_id, actor="admin", channel="api", wallet_id=wallet_id)
        assert await load_policy(conn, tenant_id, wallet_id) == strict(2)
        assert await get_stored_policy(conn, tenant_id, wallet_id) is None
        rows = (
            (
                await conn.execute(
                    sa.select(audit_log).where(audit_log.c.tenant_id == tenant_id).order_by(audit_log.c.id)
                )
            )
            .mappings()
            .all()
        )
    assert [(r["action"], r["channel"]) for r in rows] == [
        ("approval_policy.saved", "api"),
        ("approval_policy.saved", "cli"),
        ("approval_policy.saved", "api"),
        ("approval_policy.deleted", "api"),
    ]
    assert rows[0]["data"]["previous"] is None
    assert ApprovalPolicy.model_validate(rows[1]["data"]["previous"]) == strict(1)
    assert ApprovalPolicy.model_validate(rows[1]["data"]["policy"]) == strict(2)
    assert rows[2]["subject_id"] == f"{tenant_id}/{wallet_id}"


async def test_an_invalid_policy_is_never_stored(db_engine, scope):
    tenant_id, _ = scope
    with pytest.raises(ValueError):
        bad = ApprovalPolicy.model_construct(tiers=[Tier(max_amount_atomic=5, approvals_required=0)])
        async with db_engine.begin() as conn:
            await save_policy(conn, tenant_id, bad, actor="admin", channel="api")
    async with db_engine.connect() as conn:
        assert await get_stored_policy(conn, tenant_id) is None
