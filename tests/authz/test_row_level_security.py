"""Row-level security as a second wall: the application's role sees one tenant's rows, and only inside a
transaction scoped to that tenant; it cannot change or delete audit rows, even by disabling the trigger."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from paygent.db.seed import seed_dev
from paygent.db.tenancy import set_tenant, tenant_transaction
from tests.api.helpers import create, new_recipient, payment_body, wait_final


@pytest.fixture(scope="module")
async def app_engine(app_database_url):
    engine = create_async_engine(app_database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def two_tenants(http, dev, app_settings):
    """The dev tenant and a second one, each with at least one payment."""
    other = await seed_dev(
        app_settings.owner_database_url(), app_settings.master_key_bytes(), tenant_name=f"rls-{uuid.uuid4().hex[:6]}"
    )
    r = await create(http, dev, payment_body(dev, new_recipient(), "0.01"))
    assert r.status_code == 202, r.text
    await wait_final(http, dev, r.json()["id"])
    # the other tenant's payment is recorded straight in the table (its wallet is unfunded: no need to run it)
    async with tenant_transaction(create_async_engine(app_settings.owner_database_url()), other["tenant"]["id"]) as c:
        await c.execute(
            sa.text(
                "INSERT INTO payments (id, tenant_id, wallet_id, requested_by, idempotency_key, request_hash, chain_id,"
                " asset, token_address, to_address, amount_atomic, status, workflow_id) VALUES (:id, :t, :w, :u, 'k',"
                " 'h', 31337, 'USDC', '0x0', '0x0', 1, 'refused', :wf)"
            ),
            {
                "id": uuid.uuid4(),
                "t": other["tenant"]["id"],
                "w": other["wallets"]["treasury"]["id"],
                "u": other["users"]["alice"]["id"],
                "wf": f"rls-{uuid.uuid4()}",
            },
        )
    return dev["tenant"]["id"], other["tenant"]["id"]


async def test_a_query_without_tenant_filter_sees_only_the_current_tenant(app_engine, db_engine, two_tenants):
    dev_tenant, other_tenant = two_tenants
    async with db_engine.connect() as owner:  # the owner (superuser here) sees every tenant
        per_tenant = dict(
            (await owner.execute(sa.text("SELECT tenant_id::text, count(*) FROM payments GROUP BY tenant_id"))).all()
        )
    assert per_tenant[dev_tenant] >= 1 and per_tenant[other_tenant] >= 1
    for tenant in (dev_tenant, other_tenant):
        async with app_engine.begin() as conn:
            await set_tenant(conn, tenant)
            assert await conn.scalar(sa.text("SELECT count(*) FROM payments")) == per_tenant[tenant]
            tenants_seen = set(await conn.scalars(sa.text("SELECT DISTINCT tenant_id::text FROM audit_log")))
            assert tenants_seen == ({tenant} if tenant == dev_tenant else tenants_seen & {tenant})
    async with app_engine.begin() as conn:  # no tenant set: nothing at all
        for table in ("payments", "wallets", "users", "reservations", "ledger_entries", "agents", "wallet_grants"):
            assert await conn.scalar(sa.text(f"SELECT count(*) FROM {table}")) == 0, table
        # audit rows of any tenant stay hidden (rows with no tenant, e.g. refused anonymous callers, show)
        assert await conn.scalar(sa.text("SELECT count(*) FROM audit_log WHERE tenant_id IS NOT NULL")) == 0


async def test_a_row_for_another_tenant_cannot_be_written(app_engine, two_tenants):
    dev_tenant, other_tenant = two_tenants
    with pytest.raises(DBAPIError, match="row-level security"):
        async with app_engine.begin() as conn:
            await set_tenant(conn, dev_tenant)
            await conn.execute(
                sa.text(
                    "INSERT INTO webhooks (id, tenant_id, url, secret_sealed) VALUES "
                    "(:id, :t, 'https://example.com/h', :s)"
                ),
                {"id": uuid.uuid4(), "t": other_tenant, "s": b"sealed"},
            )


async def test_the_app_role_is_no_superuser_no_owner_and_cannot_touch_audit_rows(app_engine, two_tenants):
    dev_tenant, _ = two_tenants
    async with app_engine.connect() as conn:
        role = (
            await conn.execute(
                sa.text("SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = current_user")
            )
        ).one()
        assert tuple(role) == (False, False, False)
        owned = await conn.scalar(
            sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user")
        )
        assert owned == 0
    for statement in (
        "ALTER TABLE audit_log DISABLE TRIGGER USER",
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(DBAPIError, match="must be owner|permission denied"):
            async with app_engine.begin() as conn:
                await set_tenant(conn, dev_tenant)
                await conn.execute(sa.text(statement))


def test_audit_verify_refuses_to_run_as_a_role_that_sees_only_part_of_the_chain(app_settings):
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "PAYGENT_DATABASE_URL": app_settings.database_url,
        "PAYGENT_MIGRATE_DATABASE_URL": app_settings.database_url,
    }  # the application's role, not the owner
    done = subprocess.run(
        [sys.executable, "-m", "paygent.cli", "audit", "verify"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "does not see every audit row" in done.stderr, done
