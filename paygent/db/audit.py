"""Append to and verify the hash-chained audit log.

The log is a set of hash chains: each row links to the previous row of its own chain, named
"<tenant id or system>/<n>" with n = a hash of the row's subject modulo CHAINS_PER_TENANT. One subject's rows
(a payment's, an approval's) are therefore in order on one chain (unless one transaction writes rows of
several subjects: they all follow its first row's chain, so no transaction holds two chain locks), and appends to different chains do not wait
for each other: an append locks only its chain, until its transaction ends (issue 11: one global lock, held
through every audited transaction's commit, serialised the whole system). Rows written before chains existed
have `chain` NULL and form one chain of their own. `verify_chain` walks all rows in id order and checks each
against its own chain's previous row, so a changed, removed or inserted row is found exactly as before.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.schema import audit_log
from paygent.domain.audit_chain import GENESIS_HASH, AuditFields, row_hash
from paygent.domain.audit_names import AuditSubject
from paygent.domain.channels import Channel

CHAINS_PER_TENANT = 16
# Appends to one chain are serialised by a transaction-scoped advisory lock (this class id, the chain's
# hashtext) so a chain never forks; two chains sharing a 32-bit hash only wait for each other, harmlessly.
_AUDIT_LOCK_CLASS = 0x6175_6474  # "audt"


def chain_of(tenant_id: str | None, subject_type: str, subject_id: str) -> str:
    """The chain a row belongs to: its tenant's, spread by subject (stable across processes and releases)."""
    digest = hashlib.sha256(f"{subject_type}:{subject_id}".encode()).digest()
    return f"{tenant_id or 'system'}/{int.from_bytes(digest[:4], 'big') % CHAINS_PER_TENANT}"


def _chain_for_transaction(conn: AsyncConnection, chosen: str) -> str:
    """A transaction appends to one chain only: holding two chain locks, taken in opposite orders by two
    transactions, could deadlock. Its later rows follow its first row's chain (any chain verifies)."""
    txn = conn.sync_connection.get_transaction() if conn.sync_connection else None
    held = conn.info.get("paygent_audit_chain")
    if held is not None and txn is not None and held[0] is txn:
        return held[1]
    conn.info["paygent_audit_chain"] = (txn, chosen)
    return chosen


AUDIT_CHANNELS = frozenset(Channel)


async def append_audit(
    conn: AsyncConnection,
    *,
    actor: str,
    channel: Channel,
    action: str,  # an AuditAction, or an action spelled from a status (paygent.domain.audit_names)
    subject_type: AuditSubject,
    subject_id: str,
    data: dict[str, Any] | None = None,
    tenant_id: uuid.UUID | str | None = None,
    at: datetime | None = None,
) -> int:
    """Append one row inside the caller's transaction; returns its id."""
    if channel not in AUDIT_CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(Channel)}, not {channel!r}")
    chain = _chain_for_transaction(conn, chain_of(str(tenant_id) if tenant_id else None, subject_type, str(subject_id)))
    # One round trip: the function takes the chain's lock, then reads the head in a statement of its own, whose
    # snapshot has the previous holder's commit (migration 0019). SECURITY DEFINER, since row-level security
    # would hide a system row from a tenant.
    prev = await conn.scalar(
        sa.text("SELECT paygent_audit_lock_chain_head(:c, :chain)"), {"c": _AUDIT_LOCK_CLASS, "chain": chain}
    )
    fields = AuditFields(
        tenant_id=str(tenant_id) if tenant_id else None,
        at=at or datetime.now(UTC),
        actor=actor,
        channel=channel,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        data=data or {},
    )
    digest = row_hash(prev or GENESIS_HASH, fields)
    return await conn.scalar(
        audit_log.insert()
        .values(
            tenant_id=fields.tenant_id,
            at=fields.at,
            actor=actor,
            channel=channel,
            action=action,
            subject_type=subject_type,
            subject_id=fields.subject_id,
            data=fields.data,
            prev_hash=prev or GENESIS_HASH,
            hash=digest,
            chain=chain,
        )
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
    return bool(
        await conn.scalar(
            sa.text(
                "SELECT r.rolsuper OR r.rolbypassrls OR t.tableowner = current_user FROM pg_roles r, pg_tables t "
                "WHERE r.rolname = current_user AND t.schemaname = 'public' AND t.tablename = 'audit_log'"
            )
        )
    )


async def verify_chain(conn: AsyncConnection, batch: int = 5000) -> VerifyResult:
    """Recompute every row's hash in id order, each linked to its own chain's previous row; name the first
    row whose content or link is wrong."""
    heads: dict[str | None, str] = {}  # chain -> hash of its newest row checked so far
    checked = 0
    last_id = 0
    while True:
        rows = (
            (
                await conn.execute(
                    sa.select(audit_log).where(audit_log.c.id > last_id).order_by(audit_log.c.id).limit(batch)
                )
            )
            .mappings()
            .all()
        )
        if not rows:
            return VerifyResult(ok=True, rows_checked=checked)
        for r in rows:
            prev = heads.get(r["chain"], GENESIS_HASH)
            if r["prev_hash"] != prev:
                return VerifyResult(
                    False,
                    checked,
                    r["id"],
                    "prev_hash does not match the previous row's hash (a row was removed or inserted)",
                )
            fields = AuditFields(
                tenant_id=str(r["tenant_id"]) if r["tenant_id"] else None,
                at=r["at"],
                actor=r["actor"],
                channel=r["channel"],
                action=r["action"],
                subject_type=r["subject_type"],
                subject_id=r["subject_id"],
                data=r["data"],
            )
            if row_hash(prev, fields) != r["hash"]:
                return VerifyResult(False, checked, r["id"], "content does not match its hash (row was changed)")
            heads[r["chain"]] = r["hash"]
            checked += 1
            last_id = r["id"]
