"""One error shape for every refusal: {"error": {"code", "field", "message"}}; internal errors are 500s."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from api.route_match import allowed_methods
from paygent.domain.errors import InvalidInput

log = logging.getLogger("paygent.api")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers
        self.cause = cause  # which rule refused, for metrics (e.g. a 429's limit); never shown to the caller


def error_body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "field": field, "message": message}}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        metrics = getattr(request.app.state, "metrics", None)
        if exc.status == 429 and metrics is not None:
            metrics.rate_limited.labels(exc.cause or exc.code).inc()
        return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput):
        return JSONResponse(error_body("invalid_input", str(exc), exc.field), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        # drop the request part and the union tag ("transfer"/"x402") from the error's location
        where, *rest = first.get("loc", ()) or ("body",)
        rest = rest if where in ("body", "query", "path", "header") else [where, *rest]
        loc = [str(p) for p in rest if p not in ("transfer", "x402")]  # the part of the request, the union tag
        field = "body" if first.get("type") == "json_invalid" else ".".join(loc) or "body"  # loc: a position
        message = f"{field}: {first.get('msg', 'invalid')}"
        return JSONResponse(error_body("invalid_input", message, field), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if isinstance(exc, BodyTooLarge):
            return JSONResponse(error_body("body_too_large", str(exc.detail), "body"), status_code=413)
        if exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI could not decode the body at all
            return JSONResponse(error_body("invalid_input", "body: is not JSON text (UTF-8)", "body"), status_code=422)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # Starlette names only the first matching route's methods
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        return JSONResponse(
            error_body("http_error", str(exc.detail)), status_code=exc.status_code, headers=headers or None
        )

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception):
        if database_refused_connection(exc):
            # Postgres full (its connection slots, or the role's limit) or starting up: nothing was done, and
            # the same request will work in a moment, so say so rather than a 500 the client must not retry
            log.warning("database refused a connection: %s", type(exc).__name__)
            return JSONResponse(
                error_body("database_busy", "the database is not accepting connections now; retry shortly"),
                status_code=503,
                headers={"Retry-After": "1"},
            )
        log.exception("internal error")
        return JSONResponse(error_body("internal_error", "internal error; see the server log"), status_code=500)


# SQLSTATEs of a refused connection: too_many_connections, cannot_connect_now (starting up or shutting down)
REFUSED_CONNECTION_STATES = frozenset({"53300", "57P03"})


def database_refused_connection(exc: BaseException) -> bool:
    """Whether Postgres refused the connection (asyncpg's error, however SQLAlchemy wrapped it)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        err = todo.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if getattr(err, "sqlstate", None) in REFUSED_CONNECTION_STATES:
            return True
        todo += [err.__cause__, err.__context__, getattr(err, "orig", None)]
    return False


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body is read: an HTTPException, so FastAPI's body parsing lets it through as a 413
    (any other exception there becomes a 400 "error parsing the body")."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body: larger than {limit} bytes")


class BodySizeLimit:
    """Refuse bodies over `limit` bytes with 413, whether or not Content-Length is sent (chunked bodies are
    counted as they are read)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:  # read outside a route (no exception handler between here and the reader)
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(error_body("body_too_large", BodyTooLarge(self.limit).detail, "body"), status_code=413)
        await response(scope, receive, send)
