"""Which MCP tools a key may call, the hints each tool carries, and the middleware that shows each caller only
what it may use.

- Every tool is registered through `ToolAccess.tool(...)` with its annotations (one of the presets below) and
  the roles that may call it (default: whoever `/mcp` admits, people with the requester role and agent keys).
- `tools/list` lists only the tools the caller may call (an agent is never shown `discover_services`), and a
  call to a tool it may not use is refused as a tool error naming the role, before the tool runs. The tools'
  own checks (roles, grants) still apply: this is what the caller is shown, not the only gate.
- `resources/list` adds the caller's own resources (its wallets, `all`, and its policy) to the templates.
- Every tool call is counted by tool and outcome (paygent_mcp_tool_calls_total, api/metrics.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, Resource, TextContent, ToolAnnotations

from api.authz import Role, require
from api.errors import ApiError
from api.mcp.caller import PRINCIPAL_STATE, tool_errors
from api.wallet_service import visible_wallets
from paygent.db.accounts import Principal
from paygent.db.tenancy import tenant_transaction

# Hints for clients (MCP's ToolAnnotations): reads; money that moves (cannot be undone; a retry without the
# same request_id pays again); cancelling; adding (each call adds one more); storing over what was there (a
# repeat changes nothing more); and reaching out to other servers.
READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
PAYS = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)
CANCELS = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
APPENDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
STORES = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
FETCHES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)


@dataclass(frozen=True)
class ToolRule:
    roles: tuple[Role, ...] = (Role.requester,)
    agents: bool = True


def _principal(request: Any) -> Principal | None:
    return getattr(getattr(request, "state", None), PRINCIPAL_STATE, None)


class ToolAccess:
    """The tools of one MCPServer and who may call each."""

    def __init__(self) -> None:
        self.server: MCPServer | None = None
        self.rules: dict[str, ToolRule] = {}

    def bind(self, server: MCPServer) -> None:
        """The server tools are registered on (it is built with this object's middleware, hence later)."""
        self.server = server

    def tool(
        self,
        annotations: ToolAnnotations,
        *,
        description: str,
        roles: tuple[Role, ...] = (Role.requester,),
        agents: bool = True,
    ) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
        """Register a tool with its hints and the roles that may call it; refusals become tool errors."""

        def register(fn: Callable[..., Awaitable[Any]]) -> Any:
            if self.server is None:
                raise RuntimeError("ToolAccess.bind(server) first")
            self.rules[fn.__name__] = ToolRule(roles, agents)
            return self.server.tool(description=description, annotations=annotations)(tool_errors(fn))

        return register

    def refusal(self, who: Principal, name: str) -> str | None:
        """Why `who` may not call the tool `name`, or None when it may (unknown tools: the SDK answers)."""
        rule = self.rules.get(name)
        if rule is None:
            return None
        try:
            require(who, *rule.roles, agents=rule.agents)
        except ApiError as exc:
            return f"{exc.code}: {name}: {exc.message}"
        return None

    async def own_resources(self, request: Any, who: Principal) -> list[dict]:
        """The caller's concrete resources: each wallet it may see, `all` of them, and its spending policy."""
        d = request.app.state.deps
        async with tenant_transaction(d.engine, who.tenant_id) as conn:
            seen = await visible_wallets(conn, who)
        listed = [
            Resource(
                uri="paygent://policy/me",
                name="policy",
                title="Your spending policy",
                description="Your limits and where each stands (an agent: its own budget too)",
                mime_type="application/json",
            ),
            Resource(
                uri="paygent://wallets/all",
                name="wallets",
                title="All your wallets",
                description="Every wallet you may see, with your grants and its spending policy",
                mime_type="application/json",
            ),
        ] + [
            Resource(
                uri=f"paygent://wallets/{row.id}",
                name=f"wallet {row.name}",
                title=f"Wallet {row.name}",
                description=f"{row.address}; your grants: {', '.join(sorted(grants)) or 'none (you oversee it)'}",
                mime_type="application/json",
            )
            for row, grants in seen
        ]
        return [r.model_dump(by_alias=True, mode="json", exclude_none=True) for r in listed]

    async def middleware(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        """ServerMiddleware: filter tools/list, refuse hidden tools, list own resources, count tool calls."""
        who = _principal(ctx.request)
        if who is None or ctx.method not in ("tools/list", "tools/call", "resources/list"):
            return await call_next(ctx)
        if ctx.method == "tools/list":
            result = await call_next(ctx)
            result["tools"] = [t for t in result.get("tools", []) if self.refusal(who, t["name"]) is None]
            return result
        if ctx.method == "resources/list":
            result = await call_next(ctx)
            result["resources"] = await self.own_resources(ctx.request, who) + list(result.get("resources", []))
            return result
        name = str((ctx.params or {}).get("name", ""))
        metrics = getattr(ctx.request.app.state, "metrics", None)
        label = name if name in self.rules else "unknown"
        started = time.perf_counter()
        refused = self.refusal(who, name)
        outcome = "error"  # until the tool answers: a protocol error or a crash is an error too
        try:
            if refused is not None:
                outcome = "refused"
                return _tool_error(refused)
            result = await call_next(ctx)
            outcome = "error" if isinstance(result, dict) and result.get("isError") else "ok"
            return result
        finally:
            if metrics is not None:
                metrics.mcp_tool_call(label, outcome, time.perf_counter() - started)


def _tool_error(text: str) -> dict:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True).model_dump(
        by_alias=True, mode="json", exclude_none=True
    )
