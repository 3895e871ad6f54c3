"""Who may call what: every route declares the roles it needs through `allow(...)` (or is listed as public).

`allow(Role.admin)` is a FastAPI dependency that authenticates the caller (API key -> Principal) and refuses
with 403 `forbidden` naming the roles needed, before the route's body runs: a refusal starts, signs and
writes nothing. tests/api/test_route_roles.py walks the app's routes, so a route without a declaration fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from enum import StrEnum

from fastapi import Depends
from fastapi.routing import iter_route_contexts
from sqlalchemy.ext.asyncio import AsyncConnection

from api.deps import principal
from api.errors import ApiError
from paygent.db.accounts import Principal, get_wallet_granted
from paygent.db.grants import SPEND
from paygent.domain.errors import InvalidInput


class Role(StrEnum):
    requester = "requester"  # initiates payments and paying agent runs
    approver = "approver"  # decides approvals
    admin = "admin"  # manages wallets, grants, agents, policies, webhooks
    auditor = "auditor"  # reads payments, approvals, audit, reconciliation


# Routes that need no API key: liveness and readiness (an admin's key adds details to /readyz), Prometheus
# metrics (aggregated, no identifiers; keep the port internal), the API's own documents, and /mcp's
# protected-resource metadata (RFC 9728).
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    | {"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"}  # how /mcp authenticates
)


class RoleCheck:
    """The dependency `allow` returns: a callable object, so the roles it checks can be read off the route."""

    def __init__(self, roles: tuple[Role, ...], agents: bool) -> None:
        self.roles, self.agents = roles, agents
        self.paygent_roles = tuple(r.value for r in roles) + (("agent",) if agents else ())  # read by the route walk

    async def __call__(self, who: Principal = Depends(principal)) -> Principal:
        return require(who, *self.roles, agents=self.agents)


def allow(*roles: Role, agents: bool = False) -> RoleCheck:
    """A dependency that yields the caller when they hold one of `roles`, else refuses with 403.

    Agent keys hold the requester role but reach only the routes that say `agents=True` (paying, agent runs,
    reading their own payments and runs); every other route refuses them, whatever roles they hold.
    """
    if not roles:
        raise ValueError("allow() needs at least one role")
    return RoleCheck(roles, agents)


def require(who: Principal, *roles: Role, agents: bool = False) -> Principal:
    """The rule `allow` applies, for callers that are not a route (a WebSocket message): 403 naming the role."""
    needed = " or ".join(r.value for r in roles)
    if who.is_agent and not agents:
        raise ApiError(403, "forbidden", f"agent keys may not do this; it needs a person with the {needed} role")
    if any(who.has_role(r) for r in roles):
        return who
    raise ApiError(403, "forbidden", f"this action needs the {needed} role")


def declared_roles(route) -> tuple[str, ...] | None:
    """The roles a route declared through `allow`, or None when it declared none (public or forgotten)."""
    if not hasattr(route, "dependant"):
        return None
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, RoleCheck):
            return dep.call.paygent_roles
        stack.extend(dep.dependencies)
    return None


def route_table(app) -> list[tuple[str, str, tuple[str, ...] | None]]:
    """(method, path, roles) for every route of the app, as README.md's role table shows them."""
    rows = []
    for ctx in iter_route_contexts(app.routes):
        for method in sorted((ctx.methods or set()) - {"HEAD"}):
            rows.append((method, ctx.path or "", declared_roles(ctx.original_route)))
    return sorted(rows, key=lambda r: (r[1], r[0]))


def markdown_table(app) -> str:
    """README.md's table of routes and the roles they need (tests/authz/test_role_matrix.py keeps it true)."""
    lines = ["| endpoint | who may call it |", "|---|---|"]
    for method, path, roles in route_table(app):
        who = "anyone (no key)" if roles is None else ", ".join("agent keys" if r == "agent" else r for r in roles)
        lines.append(f"| `{method} {path}` | {who} |")
    return "\n".join(lines)


def oversees(who: Principal) -> bool:
    """Admins and auditors see every wallet, payment and approval of the tenant; others see the wallets they hold
    a grant on, the payments they requested and the approvals (and their payments) they take part in."""
    return not who.is_agent and (who.has_role(Role.admin) or who.has_role(Role.auditor))


def takes_part(who: Principal, *names: Iterable[str]) -> bool:
    """Whether a person is among the names an approval lists (its initiator, tier approvers, those counted,
    those it awaits, delegates): the rule `GET /v1/approvals` filters by, applied to one approval. Agents never
    take part in approvals (they may only read their own payments)."""
    return not who.is_agent and any(who.name in group for group in names)


def not_found(what: str) -> ApiError:
    """What a read by id answers for an object the caller may not see: the same as for one that does not exist
    (another tenant's, or another principal's), so an id reveals nothing."""
    return ApiError(404, "not_found", f"{what} not found")


async def spendable_wallet(conn: AsyncConnection, who: Principal, wallet_id: uuid.UUID):
    """The wallet if the caller may spend from it: the tenant's, and a `spend` grant on it; else 4xx naming
    `wallet_id` (another tenant's wallet looks exactly like a missing one)."""
    wallet = await get_wallet_granted(conn, who.tenant_id, wallet_id, who.user_id, SPEND)  # one round trip
    if wallet is None:
        raise InvalidInput("wallet_id", "no such wallet")
    if not wallet.granted:
        raise ApiError(
            403, "forbidden", f"wallet_id: {who.actor} holds no spend grant on wallet {wallet.name}", "wallet_id"
        )
    return wallet
