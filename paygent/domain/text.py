"""Text that can be stored: one constrained string type for every text field that enters Paygent.

Postgres refuses NUL in `text` and `\\u0000` in `jsonb`, and an unpaired UTF-16 surrogate cannot be encoded as
UTF-8 at all. Such a value accepted at the edge fails later, deterministically, wherever it is written (an audit
row, a payment's reason): retried forever, it would wedge a payment. So it is refused at the edge, with a 422
naming the field, by `SafeText` (for request models, decision payloads and tool arguments alike).

`scrub` is the fallback behind the edge: it makes any value storable (NUL and lone surrogates shown as escapes),
for the rare path where a value that never passed the edge must still be recorded (a refused Signal's body).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable(value: str) -> str | None:
    """Why `value` cannot be stored, or None."""
    if "\x00" in value:
        return "must not contain the NUL character (\\u0000)"
    if _LONE_SURROGATE.search(value):
        return "must not contain unpaired surrogates (invalid Unicode)"
    return None


def _check(value: str) -> str:
    reason = unstorable(value)
    if reason:
        raise ValueError(reason)
    return value


SafeText = Annotated[str, AfterValidator(_check)]


def scrub(value: Any) -> Any:
    """A storable copy of a JSON-like value: NUL and lone surrogates in strings (and keys) become escapes."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", value.replace("\x00", "\\u0000"))
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value
