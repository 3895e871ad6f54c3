"""JSON text read strictly: an object that names a key twice is refused.

Python's `json` (and so FastAPI, Starlette and most servers) keeps the last of two equal keys, so
`{"amount": "0.01", "amount": "99999"}` can mean one thing to a proxy or a log and another to us. Every JSON body
and message Paygent reads goes through `loads` (api/json_body.py for HTTP and MCP, api/ws_messages.py for the
WebSocket).
"""

from __future__ import annotations

import json
from typing import Any


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key[:100]!r} appears twice in one JSON object")
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def loads(text: str | bytes) -> Any:
    """`json.loads`, refusing duplicate keys with `DuplicateKey` (other errors as `json.loads` raises them)."""
    return json.loads(text, object_pairs_hook=_unique)
