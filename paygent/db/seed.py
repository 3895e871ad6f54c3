"""The dev tenant: users alice (requester, admin), bob, carol, dave (approvers), wallets `treasury` and `ops`.

Idempotent: users that already exist keep the API key recorded in the previous dev.json when it still
verifies; otherwise a new key is issued (only hashes are stored, so a lost key cannot be recovered).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paygent.crypto import hash_api_key, new_api_key
from paygent.db import accounts
from paygent.db.engine import get_engine
from paygent.db.schema import users, wallets

DEV_TENANT = "dev"
DEV_USERS: dict[str, list[str]] = {
    "alice": ["requester", "admin"],
    "bob": ["approver"],
    "carol": ["approver"],
    "dave": ["approver"],
}
DEV_WALLETS = ("treasury", "ops")


async def seed_dev(database_url: str, master_key: bytes, existing: dict[str, Any] | None = None,
                   *, tenant_name: str = DEV_TENANT) -> dict[str, Any]:
    existing_users = (existing or {}).get("users", {})
    out: dict[str, Any] = {"users": {}, "wallets": {}}
    async with get_engine(database_url).begin() as conn:
        tenant_id = await accounts.ensure_tenant(conn, tenant_name)
        out["tenant"] = {"id": str(tenant_id), "name": tenant_name}
        for name, roles in DEV_USERS.items():
            row = await accounts.find_user(conn, tenant_id, name)
            if row is None:
                user_id, api_key = await accounts.create_user(conn, tenant_id, name, roles)
            else:
                user_id = row["id"]
                api_key = existing_users.get(name, {}).get("api_key")
                if not api_key or hash_api_key(api_key) != row["api_key_hash"]:
                    api_key = new_api_key()
                await conn.execute(users.update().where(users.c.id == user_id)
                                   .values(api_key_hash=hash_api_key(api_key), roles=roles))
            out["users"][name] = {"id": str(user_id), "api_key": api_key, "roles": roles}
        for name in DEV_WALLETS:
            row = (await conn.execute(sa.select(wallets.c.id, wallets.c.address).where(
                wallets.c.tenant_id == tenant_id, wallets.c.name == name))).first()
            if row is None:
                wallet_id, address = await accounts.create_wallet(conn, tenant_id, name, master_key)
            else:
                wallet_id, address = row.id, row.address
            out["wallets"][name] = {"id": str(wallet_id), "address": address}
    return out
