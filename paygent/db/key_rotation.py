"""Key rotation at rest: re-seal every wallet key under a new master key; replace a user's API key.

Re-sealing goes tenant by tenant (one tenant transaction each, row-level security) and is resumable: a wallet
that already opens with the new key is left as it is, so a run that stopped half-way is simply run again.
A wallet that opens with neither key stops the run with its id: nothing is guessed, nothing is lost.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncEngine

from paygent.crypto import hash_api_key, new_api_key, seal, unseal
from paygent.db.audit import append_audit
from paygent.db.schema import tenants, users, wallets
from paygent.db.tenancy import tenant_transaction
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel


class KeyRotationError(Exception):
    pass


@dataclass
class ResealReport:
    resealed: int = 0
    already: int = 0


def _opens(key: bytes, sealed: bytes, wallet_id: uuid.UUID) -> bytes | None:
    try:
        return unseal(key, sealed, context=wallet_id.bytes)
    except InvalidTag:
        return None


async def reseal_wallets(engine: AsyncEngine, old_key: bytes, new_key: bytes, *, actor: str) -> ResealReport:
    if old_key == new_key:
        raise KeyRotationError("the new master key is the current one")
    report = ResealReport()
    async with engine.connect() as conn:
        tenant_ids = list(await conn.scalars(sa.select(tenants.c.id).order_by(tenants.c.created_at)))
    for tenant_id in tenant_ids:
        async with tenant_transaction(engine, tenant_id) as conn:
            rows = (
                await conn.execute(
                    sa.select(wallets.c.id, wallets.c.encrypted_key)
                    .where(wallets.c.tenant_id == tenant_id)
                    .with_for_update()
                )
            ).all()
            resealed = 0
            for wallet_id, sealed in rows:
                if _opens(new_key, sealed, wallet_id) is not None:
                    report.already += 1
                    continue
                secret = _opens(old_key, sealed, wallet_id)
                if secret is None:
                    raise KeyRotationError(f"wallet {wallet_id} opens with neither the old nor the new master key")
                await conn.execute(
                    wallets.update()
                    .where(wallets.c.id == wallet_id)
                    .values(encrypted_key=seal(new_key, secret, context=wallet_id.bytes))
                )
                resealed += 1
            if resealed:
                await append_audit(
                    conn,
                    tenant_id=tenant_id,
                    actor=actor,
                    channel=Channel.cli,
                    action=AuditAction.tenant_master_key_rotated,
                    subject_type=AuditSubject.tenant,
                    subject_id=str(tenant_id),
                    data={"wallets": resealed},
                )
            report.resealed += resealed
    return report


async def rotate_user_key(engine: AsyncEngine, tenant_name: str, user_name: str, *, actor: str) -> str:
    """A new API key for the user (returned once; only its hash is kept). The old key fails at once."""
    async with engine.connect() as conn:
        tenant_id = await conn.scalar(sa.select(tenants.c.id).where(tenants.c.name == tenant_name))
    if tenant_id is None:
        raise KeyRotationError(f"no tenant {tenant_name!r}")
    api_key = new_api_key()
    async with tenant_transaction(engine, tenant_id) as conn:
        user_id = await conn.scalar(
            users.update()
            .where(
                users.c.tenant_id == tenant_id,
                users.c.name == user_name,
            )
            .values(api_key_hash=hash_api_key(api_key))
            .returning(users.c.id)
        )
        if user_id is None:
            raise KeyRotationError(f"no user {user_name!r} in tenant {tenant_name!r}")
        await append_audit(
            conn,
            tenant_id=tenant_id,
            actor=actor,
            channel=Channel.cli,
            action=AuditAction.user_api_key_rotated,
            subject_type=AuditSubject.user,
            subject_id=str(user_id),
        )
    return api_key
