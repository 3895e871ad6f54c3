"""Principals for the authority tests: one per role (and none), an agent key, and another tenant's admin."""

from __future__ import annotations

import uuid

import pytest_asyncio

from paygent.db import grants
from paygent.db.accounts import create_user
from paygent.db.engine import get_engine
from paygent.db.seed import seed_dev
from paygent.db.tenancy import tenant_transaction


@pytest_asyncio.fixture(scope="session")
async def principals(dev, app_settings) -> dict[str, dict]:
    """name -> {"key", "id"}: requester (with a spend grant on treasury), approver, admin, auditor, nobody (no
    role), agent (the dev tenant's `shopper` key), outsider (another tenant's admin + requester)."""
    tenant = dev["tenant"]["id"]
    people: dict[str, dict] = {
        "approver": {"key": dev["users"]["bob"]["api_key"], "id": dev["users"]["bob"]["id"]},
        "auditor": {"key": dev["users"]["erin"]["api_key"], "id": dev["users"]["erin"]["id"]},
        "agent": {"key": dev["agents"]["shopper"]["api_key"], "id": dev["agents"]["shopper"]["id"]},
    }
    suffix = uuid.uuid4().hex[:6]
    async with tenant_transaction(get_engine(app_settings.owner_database_url()), tenant) as conn:
        for role, roles in (("requester", ["requester"]), ("admin", ["admin"]), ("nobody", [])):
            user_id, key = await create_user(conn, uuid.UUID(tenant), f"{role}-{suffix}", roles)
            people[role] = {"key": key, "id": str(user_id), "name": f"{role}-{suffix}"}
        await grants.grant(
            conn,
            tenant_id=uuid.UUID(tenant),
            wallet_id=uuid.UUID(dev["wallets"]["treasury"]["id"]),
            user_id=uuid.UUID(people["requester"]["id"]),
            granted_by="test",
        )
    other = await seed_dev(
        app_settings.owner_database_url(), app_settings.master_key_bytes(), tenant_name=f"outsiders-{suffix}"
    )
    people["outsider"] = {
        "key": other["users"]["alice"]["api_key"],
        "id": other["users"]["alice"]["id"],
        "tenant": other,
    }
    return people


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}
