"""GET /v1/audit: the tenant's audit rows, newest first (admins and auditors).

Read-only by construction: the application's database role cannot change or delete audit rows, and row-level
security shows a tenant only its own. `paygent audit verify` checks the whole hash chain as the owner.
"""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query

from api.authz import Role, allow
from api.deps import Deps, deps
from paygent.db.accounts import Principal
from paygent.db.schema import BIGINT_MAX, audit_log

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("")
async def list_audit(
    who: Principal = Depends(allow(Role.admin, Role.auditor)),
    d: Deps = Depends(deps),
    subject_type: str | None = Query(None, max_length=50),
    subject_id: str | None = Query(None, max_length=200),
    action: str | None = Query(None, max_length=100),
    before: int | None = Query(None, ge=1, le=BIGINT_MAX, description="next_before of the previous page"),
    limit: int = Query(100, ge=1, le=500),
):
    where = [audit_log.c.tenant_id == who.tenant_id]
    for column, value in (
        (audit_log.c.subject_type, subject_type),
        (audit_log.c.subject_id, subject_id),
        (audit_log.c.action, action),
    ):
        if value is not None:
            where.append(column == value)
    if before is not None:
        where.append(audit_log.c.id < before)
    async with d.engine.connect() as conn:
        rows = (
            (await conn.execute(sa.select(audit_log).where(*where).order_by(audit_log.c.id.desc()).limit(limit + 1)))
            .mappings()
            .all()
        )
    more, rows = len(rows) > limit, rows[:limit]
    return {
        "items": [
            {
                "id": r["id"],
                "at": r["at"].isoformat(),
                "actor": r["actor"],
                "channel": r["channel"],
                "action": r["action"],
                "subject_type": r["subject_type"],
                "subject_id": r["subject_id"],
                "data": r["data"],
                "hash": r["hash"],
            }
            for r in rows
        ],
        "next_before": rows[-1]["id"] if more and rows else None,
    }
