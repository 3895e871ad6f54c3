"""Who is calling a tool, the API's clients for it, and refusals as tool errors.

The `/mcp` route (route.py) authenticates the bearer key with the API's own `allow(...)` dependency and leaves
the Principal on the request's state; the MCP transport hands that same request to the tool's Context. A
refusal anywhere below (ApiError from the shared services, InvalidInput from validation) becomes a ToolError:
the client gets a result with `isError: true` whose text names the field, limit or rule, never a
transport error.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from api.deps import Deps
from api.errors import ApiError
from paygent.db.accounts import Principal
from paygent.db.tenancy import use_tenant
from paygent.domain.errors import InvalidInput

PRINCIPAL_STATE = "paygent_principal"

P = ParamSpec("P")
R = TypeVar("R")


def caller(ctx: Context) -> tuple[Deps, Principal]:
    """(the API's shared clients, the authenticated caller); scopes this task to the caller's tenant."""
    request = ctx.request_context.request
    who = getattr(getattr(request, "state", None), PRINCIPAL_STATE, None)
    if request is None or who is None:  # only reachable through route.py, which always sets it
        raise ToolError("unauthenticated: no API key was checked for this request")
    use_tenant(who.tenant_id)
    return request.app.state.deps, who


def refusal_text(exc: ApiError | InvalidInput) -> str:
    if isinstance(exc, InvalidInput):
        return f"invalid_input: {exc}"
    return f"{exc.code}: {exc.message}"


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Refusals raised by the shared services become tool errors naming the field, limit or rule."""

    @functools.wraps(fn)
    async def wrapped(*args: Any, **kwargs: Any) -> R:
        try:
            return await fn(*args, **kwargs)
        except (ApiError, InvalidInput) as exc:
            raise ToolError(refusal_text(exc)) from None
        except ValidationError as exc:  # arguments checked by a shared model (e.g. memory keys)
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ())) or "arguments"
            raise ToolError(f"invalid_input: {field}: {first.get('msg', 'invalid')}") from None

    return wrapped
