"""Approval policies in Postgres: one per tenant, optionally one per wallet that overrides it.

A policy decides who must approve how much, so every change is audited (with the previous policy) in the same
transaction as the change itself. With nothing stored, a tenant gets `default_dev_policy`, so a fresh dev stack
needs approvals out of the box instead of silently needing none.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.audit import append_audit
from paygent.db.schema import approval_policies
from paygent.domain.approval_policy import ApprovalPolicy, default_dev_policy
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel


def _scope(tenant_id: uuid.UUID | str, wallet_id: uuid.UUID | str | None) -> sa.ColumnElement[bool]:
    wallet = approval_policies.c.wallet_id
    return sa.and_(
        approval_policies.c.tenant_id == _uuid(tenant_id),
        wallet.is_(None) if wallet_id is None else wallet == _uuid(wallet_id),
    )


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


async def get_stored_policy(
    conn: AsyncConnection, tenant_id: uuid.UUID | str, wallet_id: uuid.UUID | str | None = None
) -> ApprovalPolicy | None:
    """Exactly the policy stored for this scope (tenant, or tenant + wallet), without fallbacks."""
    raw = await conn.scalar(sa.select(approval_policies.c.policy).where(_scope(tenant_id, wallet_id)))
    return None if raw is None else ApprovalPolicy.model_validate(raw)


async def load_policy(
    conn: AsyncConnection, tenant_id: uuid.UUID | str, wallet_id: uuid.UUID | str | None = None, *, decimals: int = 6
) -> ApprovalPolicy:
    """The policy in force: the wallet's, else the tenant's, else the default dev policy."""
    if wallet_id is not None:
        policy = await get_stored_policy(conn, tenant_id, wallet_id)
        if policy is not None:
            return policy
    return await get_stored_policy(conn, tenant_id) or default_dev_policy(decimals)


async def save_policy(
    conn: AsyncConnection,
    tenant_id: uuid.UUID | str,
    policy: ApprovalPolicy,
    *,
    actor: str,
    channel: Channel,
    wallet_id: uuid.UUID | str | None = None,
) -> None:
    """Create or replace the policy for this scope; audited with the previous one, in the caller's transaction.

    Running approvals keep the policy they started with (it is part of their input): a change applies to new
    operations only, so nobody can lower the bar under an approval already in flight.
    """
    previous = await get_stored_policy(conn, tenant_id, wallet_id)
    body = ApprovalPolicy.model_validate(policy.model_dump()).model_dump(mode="json")  # re-checked, never trusted
    stmt = pg_insert(approval_policies).values(
        tenant_id=_uuid(tenant_id),
        wallet_id=None if wallet_id is None else _uuid(wallet_id),
        policy=body,
        updated_by=actor,
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            constraint="approval_policies_scope",
            set_={"policy": stmt.excluded.policy, "updated_by": stmt.excluded.updated_by, "updated_at": sa.func.now()},
        )
    )
    await append_audit(
        conn,
        actor=actor,
        channel=channel,
        action=AuditAction.approval_policy_saved,
        subject_type=AuditSubject.approval_policy,
        subject_id=_subject(tenant_id, wallet_id),
        tenant_id=tenant_id,
        data={
            "wallet_id": None if wallet_id is None else str(wallet_id),
            "policy": body,
            "previous": None if previous is None else previous.model_dump(mode="json"),
        },
    )


async def delete_policy(
    conn: AsyncConnection,
    tenant_id: uuid.UUID | str,
    *,
    actor: str,
    channel: Channel,
    wallet_id: uuid.UUID | str | None = None,
) -> bool:
    """Remove a scope's policy (a wallet falls back to its tenant's); audited. False when none was stored."""
    previous = await get_stored_policy(conn, tenant_id, wallet_id)
    if previous is None:
        return False
    await conn.execute(approval_policies.delete().where(_scope(tenant_id, wallet_id)))
    await append_audit(
        conn,
        actor=actor,
        channel=channel,
        action=AuditAction.approval_policy_deleted,
        subject_type=AuditSubject.approval_policy,
        subject_id=_subject(tenant_id, wallet_id),
        tenant_id=tenant_id,
        data={"wallet_id": None if wallet_id is None else str(wallet_id), "previous": previous.model_dump(mode="json")},
    )
    return True


def _subject(tenant_id: uuid.UUID | str, wallet_id: uuid.UUID | str | None) -> str:
    return f"{tenant_id}" if wallet_id is None else f"{tenant_id}/{wallet_id}"
