"""Append to and verify the hash-chained audit log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.schema import audit_log
from paygent.domain.audit_chain import GENESIS_HASH, AuditFields, row_hash

CHANNELS = ("api", "cli", "mcp", "temporal", "system")
# Appends are serialised by a transaction-scoped advisory lock so the chain never forks.
_AUDIT_LOCK_KEY = 0x7061_7967_6175_6474  # "paygaudt"


async def append_audit(
    conn: AsyncConnection,
    *,
    actor: str,
    channel: str,
    action: str,
    subject_type: str,
    subject_id: str,
    data: dict[str, Any] | None = None,
    tenant_id: uuid.UUID | str | None = None,
    at: datetime | None = None,
) -> int:
    """Append one row inside the caller's transaction; returns its id."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}")
    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK_KEY})
    # the newest row of the one chain, whichever tenant it belongs to (row-level security would hide it)
    prev = await conn.scalar(sa.text("SELECT paygent_audit_last_hash()"))
    fields = AuditFields(
        tenant_id=str(tenant_id) if tenant_id else None,
        at=at or datetime.now(timezone.utc),
        actor=actor, channel=channel, action=action,
        subject_type=subject_type, subject_id=str(subject_id), data=data or {},
    )
    digest = row_hash(prev or GENESIS_HASH, fields)
    return await conn.scalar(
        audit_log.insert()
        .values(tenant_id=fields.tenant_id, at=fields.at, actor=actor, channel=channel, action=action,
                subject_type=subject_type, subject_id=fields.subject_id, data=fields.data,
                prev_hash=prev or GENESIS_HASH, hash=digest)
        .returning(audit_log.c.id)
    )


@dataclass
class VerifyResult:
    ok: bool
    rows_checked: int
    first_broken_id: int | None = None
    reason: str | None = None


async def sees_whole_audit_log(conn: AsyncConnection) -> bool:
    """Only a superuser, a role that bypasses row-level security, or the table's owner (whose policy shows every
    row) sees the whole chain; any other role would "verify" a fragment."""
    return bool(await conn.scalar(sa.text(
        "SELECT r.rolsuper OR r.rolbypassrls OR t.tableowner = current_user FROM pg_roles r, pg_tables t "
        "WHERE r.rolname = current_user AND t.schemaname = 'public' AND t.tablename = 'audit_log'")))


async def verify_chain(conn: AsyncConnection, batch: int = 5000) -> VerifyResult:
    """Recompute every row's hash in id order; name the first row whose content or link is wrong."""
    prev = GENESIS_HASH
    checked = 0
    last_id = 0
    while True:
        rows = (await conn.execute(
            sa.select(audit_log).where(audit_log.c.id > last_id).order_by(audit_log.c.id).limit(batch)
        )).mappings().all()
        if not rows:
            return VerifyResult(ok=True, rows_checked=checked)
        for r in rows:
            if r["prev_hash"] != prev:
                return VerifyResult(False, checked, r["id"], "prev_hash does not match the previous row's hash "
                                    "(a row was removed or inserted)")
            fields = AuditFields(
                tenant_id=str(r["tenant_id"]) if r["tenant_id"] else None, at=r["at"], actor=r["actor"],
                channel=r["channel"], action=r["action"], subject_type=r["subject_type"],
                subject_id=r["subject_id"], data=r["data"],
            )
            if row_hash(prev, fields) != r["hash"]:
                return VerifyResult(False, checked, r["id"], "content does not match its hash (row was changed)")
            prev = r["hash"]
            checked += 1
            last_id = r["id"]
