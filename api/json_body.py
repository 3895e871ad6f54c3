"""Refuse a JSON request body that repeats a key in one object, with 422 naming the key, before any route (or
the MCP endpoint) reads it. Bodies that are not JSON pass through untouched: the route says what is wrong."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from paygent.domain.text import unstorable
from paygent.strict_json import DuplicateKey, loads

_WITH_BODY = {"POST", "PUT", "PATCH", "DELETE"}


def _is_json(scope: Scope) -> bool:
    """FastAPI reads a body as JSON when its type says JSON, or when no type is given."""
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"").lower()
    return not content_type or b"json" in content_type


class UniqueJsonKeys:
    """Reads the whole body (inside BodySizeLimit, so bounded), checks it, then hands the same bytes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY or not _is_json(scope):
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                return await self.app(scope, _replay(message, receive), send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if body.strip():
            try:
                loads(body)
            except DuplicateKey as exc:
                field = exc.key[:100] if not unstorable(exc.key) else "body"
                reason = f"{field}: appears twice in one JSON object (send each key once)"
                response = JSONResponse(error_body("invalid_input", reason, field), status_code=422)
                return await response(scope, receive, send)
            except ValueError:  # not JSON at all (or not UTF-8): the route answers that in its own words
                pass
        await self.app(scope, _replay({"type": "http.request", "body": body, "more_body": False}, receive), send)


def _replay(first: Message, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay
