"""Opaque page cursors for newest-first lists: (created_at, id) of the last item shown, base64 JSON.

Callers pass back `next_cursor` as given; anything else is refused naming the `cursor` field."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from paygent.domain.errors import InvalidInput


def encode(created_at: datetime, item_id: object) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), str(item_id)]).encode()).decode()


def decode(text: str) -> tuple[datetime, str]:
    try:
        at, item_id = json.loads(base64.urlsafe_b64decode(text.encode()))
        return datetime.fromisoformat(at), str(item_id)
    except (ValueError, TypeError):
        raise InvalidInput("cursor", "is not a cursor this API returned (use next_cursor as given)") from None
