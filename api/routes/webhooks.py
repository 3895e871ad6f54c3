"""Webhooks (admins): where approval events are POSTed, HMAC-SHA256-signed with a per-webhook secret.

The secret is generated here and shown once, in the creation answer; at rest it is sealed under the master key
like wallet keys (only the delivery activity opens it). Receivers check `X-Paygent-Signature`
(`sha256=<hex>` of the raw body) and deduplicate on `X-Paygent-Delivery`.
"""

from __future__ import annotations

import secrets
import uuid

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.authz import Role, allow
from api.deps import Deps, deps
from api.errors import ApiError
from paygent.crypto import seal_webhook_secret
from paygent.db.accounts import Principal
from paygent.db.audit import append_audit
from paygent.db.schema import webhooks
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.text import SafeText
from paygent.egress import require_allowed
from workflows.approval_types import ApprovalEventType

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
ADMIN = allow(Role.admin)


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: SafeText = Field(max_length=2000)
    events: list[ApprovalEventType] = Field(default_factory=list, description="empty: every event type")


def _view(row) -> dict:
    return {
        "id": str(row.id),
        "url": row.url,
        "events": list(row.events),
        "active": row.active,
        "created_at": row.created_at.isoformat(),
    }


@router.post("", status_code=201)
async def create(body: WebhookCreate, who: Principal = Depends(ADMIN), d: Deps = Depends(deps)):
    await require_allowed(d.settings, body.url, field="url")  # before anything is recorded
    webhook_id, secret = uuid.uuid4(), secrets.token_urlsafe(32)
    async with d.engine.begin() as conn:
        await conn.execute(
            webhooks.insert().values(
                id=webhook_id,
                tenant_id=who.tenant_id,
                url=body.url,
                secret_sealed=seal_webhook_secret(d.settings.master_key_bytes(), webhook_id, secret),
                events=body.events,
            )
        )
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.name,
            channel=Channel.api,
            action=AuditAction.webhook_created,
            subject_type=AuditSubject.webhook,
            subject_id=str(webhook_id),
            data={"url": body.url, "events": body.events},
        )
    return {
        "id": str(webhook_id),
        "url": body.url,
        "events": body.events,
        "active": True,
        "secret": secret,
    }  # shown this once


@router.get("")
async def list_(who: Principal = Depends(ADMIN), d: Deps = Depends(deps)):
    async with d.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(webhooks).where(webhooks.c.tenant_id == who.tenant_id).order_by(webhooks.c.created_at.desc())
            )
        ).all()
    return {"items": [_view(r) for r in rows]}


@router.delete("/{webhook_id}", status_code=204)
async def deactivate(webhook_id: str, who: Principal = Depends(ADMIN), d: Deps = Depends(deps)):
    try:
        wid = uuid.UUID(webhook_id)
    except ValueError:
        raise ApiError(404, "not_found", "webhook not found") from None
    async with d.engine.begin() as conn:
        done = await conn.execute(
            webhooks.update().where(webhooks.c.id == wid, webhooks.c.tenant_id == who.tenant_id).values(active=False)
        )
        if done.rowcount == 0:
            raise ApiError(404, "not_found", "webhook not found")
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.name,
            channel=Channel.api,
            action=AuditAction.webhook_deactivated,
            subject_type=AuditSubject.webhook,
            subject_id=webhook_id,
        )
