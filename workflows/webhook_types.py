"""Webhook events other than an approval's (reconciliation findings, late settlements): names and models.

Delivered by the same code as approval events (activities/approvals.py): the tenant's webhooks subscribed to
the event type, body signed with HMAC-SHA256 in `X-Paygent-Signature`, `X-Paygent-Delivery` = `event_id`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

ACT_SUBSCRIBERS = "webhooks.subscribers"
ACT_DELIVER_EVENT = "webhooks.deliver_event"


class SubscribersRequest(BaseModel):
    tenant_id: str
    event_type: str


class WebhookEvent(BaseModel):
    """The POSTed body: `{event_id, type, at, tenant_id, data}`."""

    event_id: str  # stable across retries and reruns: receivers deduplicate on it
    type: str
    at: str
    tenant_id: str
    data: dict[str, Any] = Field(default_factory=dict)


class EventDelivery(BaseModel):
    tenant_id: str  # the activity runs scoped to it (row-level security on the webhooks table)
    webhook_id: str  # the activity looks the URL and secret up: secrets never enter workflow history
    event: WebhookEvent
