"""The x402 v2 `payment-identifier` extension (the payment's idempotency key), on the wire.

The SDK ships this as `x402.extensions.payment_identifier`, but importing anything under
`x402.extensions` needs `jsonschema` (the `x402[extensions]` extra), which this project does not
install. The wire format is small and is reproduced here exactly:
- server, in PaymentRequired.extensions: `{"payment-identifier": {"info": {"required": false}, "schema": {...}}}`
- client, in PaymentPayload.extensions: the same entry with `info.id` added (16-128 chars of [A-Za-z0-9_-]).
"""

from __future__ import annotations

import copy
import re
from typing import Any

PAYMENT_IDENTIFIER = "payment-identifier"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "required": {"type": "boolean"},
        "id": {"type": "string", "minLength": 16, "maxLength": 128, "pattern": "^[a-zA-Z0-9_-]+$"},
    },
    "required": ["required"],
}


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID_PATTERN.match(value))


def declaration(required: bool = False) -> dict[str, Any]:
    """What a resource server puts under `extensions["payment-identifier"]` in its 402."""
    return {"info": {"required": required}, "schema": copy.deepcopy(SCHEMA)}


def attach(declared: dict[str, Any] | None, identifier: str) -> dict[str, Any] | None:
    """The payload's extensions: the server's declarations, with `identifier` added if it declared ours.

    Returns None when the server declared no extensions at all (nothing to echo).
    """
    if not is_valid_id(identifier):
        raise ValueError("payment identifier must be 16-128 characters of letters, digits, '-' or '_'")
    if not declared:
        return None
    extensions = copy.deepcopy(declared)
    entry = extensions.get(PAYMENT_IDENTIFIER)
    if isinstance(entry, dict) and isinstance(entry.get("info"), dict):
        entry["info"]["id"] = identifier
    return extensions


def extract(extensions: dict[str, Any] | None) -> str | None:
    """The payment identifier carried by a payload's extensions, if present and well formed."""
    entry = (extensions or {}).get(PAYMENT_IDENTIFIER)
    info = entry.get("info") if isinstance(entry, dict) else None
    value = info.get("id") if isinstance(info, dict) else None
    return value if is_valid_id(value) else None
