"""x402 spending sessions: a budget reserved (and approved) once, then paid requests against it. Pure rules.

The session workflow's Update validator asks `fetch_refusal` (no I/O); the fetch activity asks `price_refusal`
once the server has named its price. Both answer with a `SessionRefusal` naming the reason, or None.
Amounts are integer atomic units of the wallet's token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from paygent.domain.errors import InvalidInput

SESSION_WORKFLOW = "X402SessionWorkflow"
MAX_BODY_BYTES = 1024 * 1024  # a paid answer's body is returned whole or refused: never cut
MAX_ORIGINS = 20
MAX_TTL_SECONDS = 7 * 86400


def session_workflow_id(session_id: str) -> str:
    return f"x402-session-{session_id}"


class SessionStatus(StrEnum):
    pending = "pending"  # reserving the budget
    awaiting_approval = "awaiting_approval"
    active = "active"
    closed = "closed"  # ended by its owner
    expired = "expired"  # its time to live ran out
    refused = "refused"  # the budget did not fit the spending limits
    cancelled = "cancelled"  # the approval did not end approved


SESSION_OPEN = frozenset({SessionStatus.pending, SessionStatus.awaiting_approval, SessionStatus.active})
SESSION_FINAL = frozenset(set(SessionStatus) - SESSION_OPEN)


class RefusalReason(StrEnum):
    """Why a paid request in a session was refused (the API's error code; nothing was signed)."""

    origin_not_allowed = "origin_not_allowed"
    session_not_active = "session_not_active"
    session_expired = "session_expired"
    over_budget = "over_budget"
    over_ceiling = "over_ceiling"
    body_too_large = "body_too_large"
    payment_refused = "payment_refused"  # the x402 policy or the spending policy ruled the server's terms out


@dataclass(frozen=True)
class SessionRefusal:
    reason: RefusalReason
    message: str
    field: str | None = None


def origin(url: str, *, field: str = "url") -> str:
    """`scheme://host[:port]` of an http(s) URL, lower-cased, default ports dropped."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise InvalidInput(field, "is not a URL") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        raise InvalidInput(field, "must be an http(s) URL with a host")
    if port is None or port == {"http": 80, "https": 443}[scheme]:
        return f"{scheme}://{host}" if ":" not in host else f"{scheme}://[{host}]"
    return f"{scheme}://{host}:{port}" if ":" not in host else f"{scheme}://[{host}]:{port}"


def parse_origins(values: list[str]) -> list[str]:
    """The allowed origins, normalised; each must be `scheme://host[:port]` with nothing after it."""
    if not values:
        raise InvalidInput("origins", "name at least one origin, e.g. https://api.example.com")
    if len(values) > MAX_ORIGINS:
        raise InvalidInput("origins", f"at most {MAX_ORIGINS} origins")
    out: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise InvalidInput("origins", "each origin is a string")
        parts = urlsplit(value.strip())
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
            raise InvalidInput("origins", f"{value!r} is not scheme://host[:port]")
        normal = origin(value, field="origins")
        if normal not in out:
            out.append(normal)
    return out


def ceiling(*, remaining: int, max_price: int | None, max_amount: int | None) -> int:
    """The most one request may cost: the caller's max_amount, the session's max_price, what is left."""
    return min(x for x in (remaining, max_price, max_amount) if x is not None)


def fetch_refusal(
    *,
    status: SessionStatus,
    expires_at: datetime,
    now: datetime,
    origins: list[str],
    url: str,
    remaining: int,
    max_price: int | None,
    max_amount: int | None,
) -> SessionRefusal | None:
    """Whether a paid request may start at all (the Update validator): nothing has been asked or signed."""
    if status in SESSION_FINAL:
        reason = RefusalReason.session_expired if status == SessionStatus.expired else RefusalReason.session_not_active
        return SessionRefusal(reason, f"the session is {status}: start a new one")
    if now >= expires_at:
        return SessionRefusal(RefusalReason.session_expired, f"the session expired at {expires_at.isoformat()}")
    if status != SessionStatus.active:
        return SessionRefusal(RefusalReason.session_not_active, f"the session is {status}, not active yet")
    try:
        asked = origin(url)
    except InvalidInput as exc:
        return SessionRefusal(RefusalReason.origin_not_allowed, str(exc), "url")
    if asked not in origins:
        return SessionRefusal(
            RefusalReason.origin_not_allowed,
            f"origin {asked} is not allowed in this session (allowed: {', '.join(origins)})",
            "url",
        )
    if max_amount is not None and max_price is not None and max_amount > max_price:
        return SessionRefusal(
            RefusalReason.over_ceiling,
            f"max_amount {max_amount} is above the session's price ceiling {max_price} (atomic units)",
            "max_amount",
        )
    if remaining <= 0:
        return SessionRefusal(RefusalReason.over_budget, "the session's budget is used up", "max_amount")
    if max_amount is not None and max_amount > remaining:
        return SessionRefusal(
            RefusalReason.over_budget,
            f"max_amount {max_amount} is more than the session has left ({remaining} atomic units)",
            "max_amount",
        )
    return None


def price_refusal(
    price: int, *, remaining: int, max_price: int | None, max_amount: int | None
) -> SessionRefusal | None:
    """Whether the price a server asked may be paid from the session (checked before anything is signed)."""
    if max_amount is not None and price > max_amount:
        return SessionRefusal(
            RefusalReason.over_ceiling, f"the server asks {price}, above max_amount {max_amount} (atomic units)"
        )
    if max_price is not None and price > max_price:
        return SessionRefusal(
            RefusalReason.over_ceiling,
            f"the server asks {price}, above the session's price ceiling {max_price} (atomic units)",
        )
    if price > remaining:
        return SessionRefusal(
            RefusalReason.over_budget, f"the server asks {price}, more than the session has left ({remaining})"
        )
    return None


def size_refusal(declared: int | None) -> SessionRefusal | None:
    if declared is not None and declared > MAX_BODY_BYTES:
        return SessionRefusal(
            RefusalReason.body_too_large,
            f"the server declares {declared} bytes, over the {MAX_BODY_BYTES}-byte limit for a paid answer: "
            "nothing was paid",
        )
    return None
