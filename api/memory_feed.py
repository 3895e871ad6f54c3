"""`memory_changed` events for a WebSocket: Redis fan-out of memory writes (paygent.memory.store publishes one
message per change on `paygent:memory:<tenant>`), filtered to one scope the socket's principal may read.

Access is checked when the socket subscribes and again before each event is sent, so a grant taken back stops
the events at the next change (the socket then gets an `error` naming `scope` and the subscription ends).
Fan-out is best effort, like Redis pub/sub itself: a change made while Redis is down is not announced (reads
are still right; a client that must not miss a change re-reads after it reconnects).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from api.deps import Deps
from api.errors import ApiError
from api.memory_service import place_for
from paygent.db.accounts import Principal
from paygent.memory.access import Access
from paygent.memory.store import Place

log = logging.getLogger("paygent.api.ws")
Send = Callable[[dict[str, Any]], Awaitable[None]]


def channel(place: Place) -> str:
    return f"paygent:memory:{place.tenant_id}"


def matches(place: Place, event: dict[str, Any]) -> bool:
    return event.get("owner") == str(place.owner_id) and event.get("scope") == place.written


async def follow_scope(d: Deps, who: Principal, place: Place, send: Send) -> None:
    """Forward this scope's changes until cancelled, or until the principal may no longer read it."""
    pubsub = d.redis.pubsub()
    try:
        await pubsub.subscribe(channel(place))
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
            if message is None:
                continue
            event = json.loads(message["data"])
            if not matches(place, event):
                continue
            try:
                await place_for(d, who, place.written, Access.read)
            except ApiError as exc:
                await send({"type": "error", "ref": None, "code": exc.code, "field": "scope", "message": exc.message})
                return
            await send({"type": "memory_changed", **{k: v for k, v in event.items() if k != "owner"}})
    except asyncio.CancelledError:
        raise
    except Exception:
        log.warning("memory feed stopped (Redis unreachable?)", exc_info=True)
        await send(
            {
                "type": "error",
                "ref": None,
                "code": "unavailable",
                "field": "scope",
                "message": f"scope: the change feed for {place.written} stopped; subscribe again",
            }
        )
    finally:
        try:
            await pubsub.aclose()
        except Exception:
            pass
