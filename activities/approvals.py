"""Approval activities: the ApprovalWorkflow's I/O (audit log + approvals row, Redis pub/sub, webhooks, policy).

Each side effect is its own activity so Temporal retries it on its own: a webhook that is down does not re-write
the audit log, and an audit write that failed is retried until Postgres answers (an accepted decision must be
recorded). Webhook secrets stay here: the workflow passes a webhook id, never a secret, into its history.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import redis.asyncio as aioredis
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from paygent.crypto import channel_attestation, unseal_webhook_secret
from paygent.db import policies
from paygent.db.audit import append_audit
from paygent.db.schema import approvals, audit_log, webhooks
from paygent.db.tenancy import tenant_transaction
from paygent.domain.approval_policy import ApprovalPolicy
from paygent.domain.audit_names import AuditSubject
from paygent.domain.channels import CLAIMABLE, Channel
from paygent.domain.errors import ErrorType
from paygent.egress import EgressPolicy, EgressRefused
from paygent.settings import Settings
from workflows.approval_types import (
    ACT_LOAD_POLICY,
    ACT_PUBLISH,
    ACT_RECORD,
    ACT_SIGNAL_GATE,
    ACT_WEBHOOK,
    ApprovalEvent,
    DecisionRecord,
    PolicyRequest,
    WebhookDelivery,
)
from workflows.webhook_types import ACT_DELIVER_EVENT, ACT_SUBSCRIBERS, EventDelivery, SubscribersRequest

SIGNATURE_HEADER = "X-Paygent-Signature"


def redis_channel(tenant_id: str) -> str:
    return f"paygent:approvals:{tenant_id}"


def event_body(event: ApprovalEvent) -> bytes:
    """The exact bytes published and POSTed (and signed): the same event always gives the same bytes."""
    return event.model_dump_json().encode()


def sign_body(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """For receivers: constant-time check of X-Paygent-Signature against the raw request body."""
    return header is not None and hmac.compare_digest(sign_body(secret, body), header)


@dataclass(frozen=True)
class ConfiguredWebhook:
    """A webhook from configuration rather than the `webhooks` table (applies to every tenant)."""

    url: str
    secret: str
    events: tuple[str, ...] = field(default_factory=tuple)  # empty: every event type


class ApprovalActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        redis_client: aioredis.Redis,
        settings: Settings,
        *,
        webhooks: Sequence[ConfiguredWebhook] = (),
    ) -> None:
        self._engine = engine
        self._redis = redis_client
        self._settings = settings
        self._configured = list(webhooks)

    async def aclose(self) -> None:
        """Nothing held open: each delivery uses its own egress-checked client."""

    @activity.defn(name=ACT_RECORD)
    async def record_decision(self, record: DecisionRecord) -> int:
        """Audit row + approvals row in one transaction; a retried attempt finds its row and writes nothing."""
        info = activity.info()
        # local and regular activities number their ids apart: a run that switched to local records (a patch)
        # must not mistake its local activity 1 for the regular activity 1 it recorded before
        key = f"{info.workflow_id}/{info.workflow_run_id}/{'local-' if info.is_local else ''}{info.activity_id}"
        view = record.view
        async with self._engine.begin() as conn:
            existing = await conn.scalar(
                sa.select(audit_log.c.id).where(
                    audit_log.c.subject_type == "approval",
                    audit_log.c.subject_id == view.approval_id,
                    audit_log.c.data["record_key"].astext == key,
                )
            )
            if existing is not None:
                return existing
            channel, claimed = self._proven_channel(record)
            audit_id = await append_audit(
                conn,
                actor=record.actor,
                channel=channel,
                action=record.action,
                subject_type=AuditSubject.approval,
                subject_id=view.approval_id,
                tenant_id=view.tenant_id,
                at=record.at,
                data={
                    **record.data,
                    "record_key": key,
                    "workflow_id": view.workflow_id,
                    "operation_hash": record.data.get("operation_hash", view.operation_hash),
                    **claimed,
                },
            )
            row = dict(
                id=view.approval_id,
                tenant_id=uuid.UUID(view.tenant_id),
                workflow_id=view.workflow_id,
                payment_id=view.operation.payment_id,
                initiator=view.initiator,
                status=view.status,
                approvals_had=view.approvals_had,
                approvals_needed=view.approvals_needed,
                operation_hash=view.operation_hash,
                operation=view.operation.model_dump(mode="json"),
                amount_atomic=view.operation.amount_atomic,
                approvers=list(view.tier.approvers),
                approved_by=view.approved_by,
                awaiting=view.awaiting,
                expires_at=view.expires_at,
                timelock_until=view.timelock_until,
                decided_by=view.decided_by,
                reason=view.reason,
                revision=view.revision,
            )
            stmt = pg_insert(approvals).values(**row)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[approvals.c.id],
                    set_={**{k: stmt.excluded[k] for k in row if k != "id"}, "updated_at": sa.func.now()},
                    where=approvals.c.revision <= stmt.excluded.revision,  # activities may finish out of order
                )
            )
            return audit_id

    def _proven_channel(self, record: DecisionRecord) -> tuple[Channel, dict[str, str]]:
        """`api`/`cli` only with the API's attestation for exactly this decision; otherwise `temporal` (the claim
        is kept beside it). A decision sent straight to Temporal cannot pass for one that came through the API."""
        if record.channel not in CLAIMABLE:
            return record.channel, {}
        try:
            master_key = self._settings.master_key_bytes()
        except RuntimeError:  # no master key on this worker: nothing can be proven
            return Channel.temporal, {"claimed_channel": record.channel}
        expected = channel_attestation(
            master_key,
            approval_id=record.view.approval_id,
            decision=record.action.removeprefix("approval."),
            actor=record.actor,
            channel=record.channel,
            request_id=str(record.data.get("request_id") or ""),
        )
        if record.attestation and hmac.compare_digest(record.attestation, expected):
            return record.channel, {}
        return Channel.temporal, {"claimed_channel": record.channel}

    @activity.defn(name=ACT_PUBLISH)
    async def publish_event(self, event: ApprovalEvent) -> list[str]:
        """Publishes on Redis and returns the ids of the webhooks that want this event (delivered separately)."""
        tenant_id = event.approval.tenant_id
        await self._redis.publish(redis_channel(tenant_id), event_body(event))
        return await self.subscribers(SubscribersRequest(tenant_id=tenant_id, event_type=event.type))

    @activity.defn(name=ACT_SUBSCRIBERS)
    async def subscribers(self, request: SubscribersRequest) -> list[str]:
        """Ids of the tenant's active webhooks (and configured ones) that want this event type."""
        async with tenant_transaction(self._engine, request.tenant_id) as conn:
            rows = await conn.execute(
                sa.select(webhooks.c.id)
                .where(
                    webhooks.c.tenant_id == uuid.UUID(request.tenant_id),
                    webhooks.c.active,
                    sa.or_(
                        sa.func.cardinality(webhooks.c.events) == 0,
                        sa.literal(request.event_type) == sa.any_(webhooks.c.events),
                    ),
                )
                .order_by(webhooks.c.created_at, webhooks.c.id)
            )
            ids = [str(r.id) for r in rows]
        ids += [
            f"config:{i}"
            for i, hook in enumerate(self._configured)
            if not hook.events or request.event_type in hook.events
        ]
        return ids

    @activity.defn(name=ACT_WEBHOOK)
    async def deliver_webhook(self, delivery: WebhookDelivery) -> int:
        """POST the signed event. 2xx: done; 408/429/5xx/network: retried; other 4xx: the receiver refuses."""
        return await self._post(
            delivery.webhook_id, delivery.event.type, delivery.event.event_id, event_body(delivery.event)
        )

    @activity.defn(name=ACT_DELIVER_EVENT)
    async def deliver_event(self, delivery: EventDelivery) -> int:
        """POST a non-approval event (reconciliation findings), signed and retried like approval events."""
        event = delivery.event
        return await self._post(delivery.webhook_id, event.type, event.event_id, event.model_dump_json().encode())

    async def _post(self, webhook_id: str, event_type: str, event_id: str, body: bytes) -> int:
        url, secret = await self._resolve(webhook_id)
        headers = {
            "Content-Type": "application/json",
            "X-Paygent-Event": event_type,
            "X-Paygent-Delivery": event_id,
            SIGNATURE_HEADER: sign_body(secret, body),
        }
        try:  # one attempt per activity attempt (Temporal owns retries); checked and pinned by the egress policy
            async with EgressPolicy.from_settings(self._settings).client(timeout=10.0) as http:
                response = await http.post(url, content=body, headers=headers)
        except EgressRefused as exc:  # the address is refused now (DNS moved): retrying cannot help
            raise ApplicationError(
                f"webhook url: {exc.reason}", type=ErrorType.webhook_refused, non_retryable=True
            ) from None
        except httpx.HTTPError as exc:
            raise ApplicationError(f"webhook {url} unreachable: {exc!r}", type=ErrorType.webhook_unreachable) from exc
        if response.is_success:
            return response.status_code
        message = f"webhook {url} answered {response.status_code}"
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise ApplicationError(message, type=ErrorType.webhook_unavailable)
        raise ApplicationError(message, type=ErrorType.webhook_rejected, non_retryable=True)

    @activity.defn(name=ACT_LOAD_POLICY)
    async def load_policy(self, request: PolicyRequest) -> ApprovalPolicy:
        """For PaymentWorkflow: the policy in force for this tenant and wallet, passed into ApprovalInput."""
        async with self._engine.connect() as conn:
            return await policies.load_policy(
                conn, request.tenant_id, request.wallet_id, decimals=self._settings.token_decimals
            )

    @activity.defn(name=ACT_SIGNAL_GATE)
    async def signal_decisions_allowed(self) -> bool:
        """Whether this deployment accepts approval decisions sent as raw Temporal Signals (an operator setting,
        read when each Signal arrives, so turning it off applies to approvals already running)."""
        return bool(self._settings.signal_decisions)

    async def _resolve(self, webhook_id: str) -> tuple[str, str]:
        if webhook_id.startswith("config:"):
            index = int(webhook_id.split(":", 1)[1])
            if index < len(self._configured):
                return self._configured[index].url, self._configured[index].secret
        else:
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(
                        sa.select(webhooks.c.url, webhooks.c.secret_sealed).where(
                            webhooks.c.id == uuid.UUID(webhook_id), webhooks.c.active
                        )
                    )
                ).first()
            if row is not None:  # opened here, for this one delivery; never logged nor passed to the workflow
                return row.url, unseal_webhook_secret(
                    self._settings.master_key_bytes(), uuid.UUID(webhook_id), row.secret_sealed
                )
        raise ApplicationError(
            f"webhook {webhook_id} no longer exists", type=ErrorType.webhook_gone, non_retryable=True
        )


def approval_activities(instance: ApprovalActivities) -> list:
    """The bound activity methods, for `Worker(activities=...)`."""
    return [
        instance.record_decision,
        instance.publish_event,
        instance.deliver_webhook,
        instance.load_policy,
        instance.signal_decisions_allowed,
        instance.subscribers,
        instance.deliver_event,
    ]
