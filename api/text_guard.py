"""Query parameters get the same text rule as body fields (paygent.domain.text.SafeText), before any route runs.

Body fields are declared `SafeText` in the request models; query parameters are checked here, in one place, so
the rule needs no change to each route's signature. A NUL or an unpaired surrogate (`%00`, `%ED%A0%80`) is a
422 naming the parameter, like any other invalid input. The query is decoded exactly as Starlette decodes it for
the routes (invalid UTF-8 becomes U+FFFD, so only NUL can get through that far). Headers cannot carry either (HTTP refuses NUL, and
header bytes decode as latin-1), and path parameters are ids that are parsed and answer 404 when unknown.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse

from api.errors import error_body
from paygent.domain.text import unstorable


class QueryTextGuard:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("query_string"):
            query = scope["query_string"].decode("latin-1")
            for name, value in parse_qsl(query, keep_blank_values=True):
                reason = unstorable(name) or unstorable(value)
                if reason:
                    field = name if not unstorable(name) else "query"
                    response = JSONResponse(error_body("invalid_input", f"{field}: {reason}", field), status_code=422)
                    return await response(scope, receive, send)
        return await self.app(scope, receive, send)
