"""The dev tenant: users alice (requester, admin; may spend from treasury and ops), bob, carol, dave (approvers),
erin (auditor), wallets `treasury` and `ops`, and the agent `shopper` (its own key; treasury; 10 USDC a day).

Idempotent: users that already exist keep the API key recorded in the previous dev.json when it still
verifies; otherwise a new key is issued (only hashes are stored, so a lost key cannot be recovered).
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from paygent.crypto import hash_api_key, new_api_key
from paygent.db import accounts, agents, grants
from paygent.db.engine import get_engine
from paygent.db.schema import users, wallets
from paygent.domain.spending import SpendingPolicy, VelocityLimit

DEV_TENANT = "dev"
DEV_USERS: dict[str, list[str]] = {
    "alice": ["requester", "admin"],
    "bob": ["approver"],
    "carol": ["approver"],
    "dave": ["approver"],
    "erin": ["auditor"],
}
DEV_WALLETS = ("treasury", "ops")
DEV_GRANTS = {"alice": ("treasury", "ops")}  # spend grants
DEV_AGENT = "shopper"
# a small budget for the demo agent: 5 USDC a payment, 10 USDC a day (atomic units, 6 decimals)
DEV_AGENT_POLICY = SpendingPolicy(
    per_payment_cap_atomic=5_000_000,
    velocity=[VelocityLimit(name="daily", window_seconds=86_400, max_atomic=10_000_000)],
)


async def seed_dev(
    database_url: str, master_key: bytes, existing: dict[str, Any] | None = None, *, tenant_name: str = DEV_TENANT
) -> dict[str, Any]:
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
                await conn.execute(
                    users.update().where(users.c.id == user_id).values(api_key_hash=hash_api_key(api_key), roles=roles)
                )
            out["users"][name] = {"id": str(user_id), "api_key": api_key, "roles": roles}
        for name in DEV_WALLETS:
            row = (
                await conn.execute(
                    sa.select(wallets.c.id, wallets.c.address).where(
                        wallets.c.tenant_id == tenant_id, wallets.c.name == name
                    )
                )
            ).first()
            if row is None:
                wallet_id, address = await accounts.create_wallet(conn, tenant_id, name, master_key)
            else:
                wallet_id, address = row.id, row.address
            out["wallets"][name] = {"id": str(wallet_id), "address": address}
        for user, wallet_names in DEV_GRANTS.items():
            for wallet_name in wallet_names:
                await grants.grant(
                    conn,
                    tenant_id=tenant_id,
                    wallet_id=uuid.UUID(out["wallets"][wallet_name]["id"]),
                    user_id=uuid.UUID(out["users"][user]["id"]),
                    granted_by="seed",
                )
        out["agents"] = {DEV_AGENT: await _seed_agent(conn, tenant_id, out, (existing or {}).get("agents", {}))}
    return out


async def _seed_agent(conn, tenant_id, out: dict[str, Any], existing: dict[str, Any]) -> dict[str, Any]:
    """The demo agent, owned by alice, granted treasury; its key kept when the previous dev.json's still works."""
    row = await accounts.find_user(conn, tenant_id, DEV_AGENT)
    if row is None:
        agent_id, api_key = await agents.create_agent(
            conn,
            tenant_id=tenant_id,
            name=DEV_AGENT,
            owner_id=uuid.UUID(out["users"]["alice"]["id"]),
            owner_name="alice",
            wallet_ids=[uuid.UUID(out["wallets"]["treasury"]["id"])],
            policy=DEV_AGENT_POLICY,
        )
    else:
        agent_id = row["id"]
        api_key = existing.get(DEV_AGENT, {}).get("api_key")
        if not api_key or hash_api_key(api_key) != row["api_key_hash"]:
            api_key = await agents.rotate_key(conn, agent_id)
    return {
        "id": str(agent_id),
        "api_key": api_key,
        "owner": "alice",
        "wallets": ["treasury"],
        "policy": DEV_AGENT_POLICY.model_dump(mode="json"),
    }
