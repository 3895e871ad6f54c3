"""Tenants, users (API keys stored as hashes) and wallets (keys sealed under the master key)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.crypto import hash_api_key, new_api_key, seal, unseal
from paygent.db.schema import tenants, users, wallet_grants, wallets

HUMAN, AGENT = "human", "agent"


class WalletMissing(LookupError):
    """The wallet to sign with is gone: deterministic, so PaymentWorkflow lists this type as non-retryable."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from an API key, never from a request body.

    A human holds roles; an agent (kind "agent") is a principal of its own with its own key, created and owned
    by an admin (`owner_id`), that may only spend from the wallets granted to it, within its own budget.
    """

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    roles: tuple[str, ...]
    kind: str = HUMAN
    owner_id: uuid.UUID | None = None
    owner_name: str | None = None

    @property
    def is_agent(self) -> bool:
        return self.kind == AGENT

    @property
    def actor(self) -> str:
        """How audit rows and approvals name the caller: an agent together with the admin who owns it."""
        return f"agent:{self.name} (owner {self.owner_name})" if self.is_agent else self.name

    def has_role(self, role: str) -> bool:
        return role in self.roles


async def ensure_tenant(conn: AsyncConnection, name: str) -> uuid.UUID:
    existing = await conn.scalar(sa.select(tenants.c.id).where(tenants.c.name == name))
    if existing:
        return existing
    tenant_id = uuid.uuid4()
    await conn.execute(tenants.insert().values(id=tenant_id, name=name))
    return tenant_id


async def create_user(
    conn: AsyncConnection, tenant_id: uuid.UUID, name: str, roles: list[str]
) -> tuple[uuid.UUID, str]:
    """Returns (user id, API key). The key is shown once; only its hash is stored."""
    api_key = new_api_key()
    user_id = uuid.uuid4()
    await conn.execute(
        users.insert().values(
            id=user_id, tenant_id=tenant_id, name=name, api_key_hash=hash_api_key(api_key), roles=roles
        )
    )
    return user_id, api_key


async def find_user(conn: AsyncConnection, tenant_id: uuid.UUID, name: str):
    return (
        (await conn.execute(sa.select(users).where(users.c.tenant_id == tenant_id, users.c.name == name)))
        .mappings()
        .first()
    )


async def authenticate(conn: AsyncConnection, api_key: str) -> Principal | None:
    """The key's principal, looked up before any tenant is known: through `paygent_authenticate`, a
    SECURITY DEFINER function (migration 0005), since row-level security hides every user row until then."""
    row = (
        await conn.execute(
            sa.text("SELECT id, tenant_id, name, roles, kind, owner_id, owner_name FROM paygent_authenticate(:h)"),
            {"h": hash_api_key(api_key)},
        )
    ).first()
    if row is None:
        return None
    return Principal(
        user_id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        roles=tuple(row.roles),
        kind=row.kind,
        owner_id=row.owner_id,
        owner_name=row.owner_name,
    )


async def create_wallet(
    conn: AsyncConnection, tenant_id: uuid.UUID, name: str, master_key: bytes
) -> tuple[uuid.UUID, str]:
    """Generates a key, stores it sealed (bound to the wallet id), returns (wallet id, address)."""
    wallet_id = uuid.uuid4()
    account = Account.create()
    sealed = seal(master_key, bytes(account.key), context=wallet_id.bytes)
    await conn.execute(
        wallets.insert().values(
            id=wallet_id, tenant_id=tenant_id, name=name, address=account.address, encrypted_key=sealed
        )
    )
    return wallet_id, account.address


async def get_wallet(conn: AsyncConnection, tenant_id: uuid.UUID, wallet_id: uuid.UUID):
    """The wallet if it belongs to the tenant (id, name, address, created_at; never the key)."""
    return (
        await conn.execute(
            sa.select(wallets.c.id, wallets.c.name, wallets.c.address, wallets.c.tenant_id, wallets.c.created_at).where(
                wallets.c.id == wallet_id, wallets.c.tenant_id == tenant_id
            )
        )
    ).first()


async def get_wallet_granted(
    conn: AsyncConnection, tenant_id: uuid.UUID, wallet_id: uuid.UUID, user_id: uuid.UUID, permission: str
):
    """`get_wallet`'s row plus `granted`: whether `user_id` holds `permission` on it; one round trip."""
    granted = (
        sa.select(sa.literal(True))
        .where(
            wallet_grants.c.user_id == user_id,
            wallet_grants.c.wallet_id == wallets.c.id,
            wallet_grants.c.permission == permission,
        )
        .exists()
    )
    return (
        await conn.execute(
            sa.select(
                wallets.c.id,
                wallets.c.name,
                wallets.c.address,
                wallets.c.tenant_id,
                wallets.c.created_at,
                granted.label("granted"),
            ).where(wallets.c.id == wallet_id, wallets.c.tenant_id == tenant_id)
        )
    ).first()


async def load_signer(conn: AsyncConnection, wallet_id: uuid.UUID, master_key: bytes) -> LocalAccount:
    """Only the signing activity calls this; the account object must not be logged or returned."""
    sealed = await conn.scalar(sa.select(wallets.c.encrypted_key).where(wallets.c.id == wallet_id))
    if sealed is None:
        raise WalletMissing(f"wallet {wallet_id} not found")
    return Account.from_key(unseal(master_key, sealed, context=wallet_id.bytes))
