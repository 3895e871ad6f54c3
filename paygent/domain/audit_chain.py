"""The audit log's hash chain: each row's hash covers its content and the previous row's hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditFields:
    tenant_id: str | None
    at: datetime
    actor: str
    channel: str
    action: str
    subject_type: str
    subject_id: str
    data: dict[str, Any]


def canonical(fields: AuditFields) -> bytes:
    body = {
        "tenant_id": fields.tenant_id,
        # microsecond precision survives a round trip through Postgres timestamptz
        "at": fields.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": fields.actor,
        "channel": fields.channel,
        "action": fields.action,
        "subject_type": fields.subject_type,
        "subject_id": fields.subject_id,
        "data": fields.data,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def row_hash(prev_hash: str, fields: AuditFields) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(fields)).hexdigest()
