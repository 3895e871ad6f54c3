"""`/mcp` in the API: MCP's Streamable HTTP transport behind the API's own authentication and role check.

The route is an ordinary FastAPI route declaring `allow(Role.requester, agents=True)`, so the bearer key, the
rate limits and the role are checked exactly as for POST /v1/payments, and the role table lists it. Then the
request (its body still unread) is handed to the SDK's transport with the Principal on the request's state,
where the tools find it (caller.py). Stateless mode: every request stands alone, so any API replica can
answer it and a rotated or disabled key stops working on the very next call. Hence POST only: there is no
session to resume with a standalone GET stream nor to end with DELETE (both answer 405, which clients accept);
progress notifications travel on the POST's own event stream.

The SDK's session manager must run inside the API's lifespan (`lifespan(app)` below).
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Depends, Request, Response
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings

from api.authz import Role, allow
from api.mcp.caller import PRINCIPAL_STATE
from paygent.db.accounts import Principal

PATH = "/mcp"
MCP_CALLER = allow(Role.requester, agents=True)


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
