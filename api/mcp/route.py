"""`/mcp` in the API: MCP's Streamable HTTP transport behind the API's own authentication and role check.

The route is an ordinary FastAPI route declaring `allow(Role.requester, agents=True)`, so the bearer key, the
rate limits and the role are checked exactly as for POST /v1/payments, and the role table lists it. Then the
request (its body still unread) is handed to the SDK's transport with the Principal on the request's state,
where the tools find it (caller.py). Stateless mode: every request stands alone, so any API replica can
answer it and a rotated or disabled key stops working on the very next call. Hence POST only: there is no
session to resume with a standalone GET stream nor to end with DELETE (both answer 405, which clients accept);
progress notifications travel on the POST's own event stream.

A refused key is a 401 carrying `WWW-Authenticate: Bearer ... resource_metadata="<api>/.well-known/
oauth-protected-resource"`, as MCP's authorization spec asks; that document (RFC 9728 Protected Resource
Metadata) names the resource and says how to authenticate: a Paygent API key as a bearer token, issued by an
admin (there is no OAuth authorization server, so clients show the message instead of starting an OAuth flow).

The SDK's session manager must run inside the API's lifespan (`lifespan(app)` below).
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Depends, Request, Response
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings

from api.authz import Role, RoleCheck, require
from api.deps import Deps, deps, principal
from api.errors import ApiError
from api.mcp.caller import PRINCIPAL_STATE
from paygent.db.accounts import Principal

PATH = "/mcp"
RESOURCE_METADATA = "/.well-known/oauth-protected-resource"
METADATA_PATHS = (RESOURCE_METADATA, RESOURCE_METADATA + PATH)  # clients probe both (RFC 9728 section 3.1)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def challenge(request: Request, exc: ApiError) -> str:
    """RFC 6750's challenge with MCP's `resource_metadata`; an error code only when a key was presented."""
    parts = ['Bearer realm="paygent"']
    if "authorization" in request.headers:
        description = exc.message.replace("\\", "").replace('"', "'")
        parts += ['error="invalid_token"', f'error_description="{description}"']
    parts.append(f'resource_metadata="{_base(request)}{RESOURCE_METADATA}"')
    return ", ".join(parts)


class McpCaller(RoleCheck):
    """`allow(Role.requester, agents=True)`, whose 401 also says where to learn how to authenticate."""

    async def __call__(self, request: Request, d: Deps = Depends(deps)) -> Principal:  # type: ignore[override]
        try:
            who = await principal(request, d)
        except ApiError as exc:
            if exc.status == 401:
                exc.headers = {**(exc.headers or {}), "WWW-Authenticate": challenge(request, exc)}
            raise
        return require(who, *self.roles, agents=self.agents)


MCP_CALLER = McpCaller((Role.requester,), agents=True)


def protected_resource(request: Request) -> dict:
    """RFC 9728 metadata for /mcp: the resource, bearer tokens in the header, and (a Paygent extension) what
    the token is; no `authorization_servers`, since keys are issued by Paygent's admins, not through OAuth."""
    base = _base(request)
    return {
        "resource": f"{base}{PATH}",
        "resource_name": "Paygent MCP server",
        "bearer_methods_supported": ["header"],
        "resource_documentation": f"{base}/docs",
        "paygent_authentication": {
            "scheme": "Bearer",
            "credential": "api_key",
            "how": "Send 'Authorization: Bearer <api key>'. A person's key has the requester role; an agent's "
            "key comes from POST /v1/agents or 'paygent agents create' (shown once). There is no OAuth flow.",
        },
    }


class _Handover(Response):
    """A response that lets the MCP transport answer (JSON or an SSE stream) on the same connection."""

    def __init__(self, app) -> None:
        super().__init__()
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)


def router(server: MCPServer) -> APIRouter:
    # Bearer API keys, never cookies: a DNS-rebinding page cannot present one, so the Host check is not needed
    # (and the API may be served under any host name).
    server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    transport = StreamableHTTPASGIApp(server.session_manager)
    r = APIRouter(tags=["mcp"])

    @r.get(METADATA_PATHS[0], include_in_schema=False)
    @r.get(METADATA_PATHS[1], include_in_schema=False)
    async def resource_metadata(request: Request) -> dict:
        """How to authenticate to /mcp (no key needed to read it)."""
        return protected_resource(request)

    @r.api_route(PATH, methods=["POST"], include_in_schema=False)
    async def mcp(request: Request, who: Principal = Depends(MCP_CALLER)):
        """The MCP endpoint (Streamable HTTP). Tools and resources: api/mcp/server.py."""
        setattr(request.state, PRINCIPAL_STATE, who)
        return _Handover(transport)

    return r


@contextlib.asynccontextmanager
async def lifespan(server: MCPServer):
    async with server.session_manager.run():
        yield
