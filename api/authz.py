"""Who may call what: every route declares the roles it needs through `allow(...)` (or is listed as public).

`allow(Role.admin)` is a FastAPI dependency that authenticates the caller (API key -> Principal) and refuses
with 403 `forbidden` naming the roles needed, before the route's body runs: a refusal starts, signs and
writes nothing. tests/api/test_route_roles.py walks the app's routes, so a route without a declaration fails.
"""

from __future__ import annotations

from enum import StrEnum

from fastapi import Depends

from api.deps import principal
from api.errors import ApiError
from paygent.db.accounts import Principal


class Role(StrEnum):
    requester = "requester"  # initiates payments and paying agent runs
    approver = "approver"  # decides approvals
    admin = "admin"  # manages wallets, grants, agents, policies, webhooks
    auditor = "auditor"  # reads payments, approvals, audit, reconciliation


# Routes that need no API key (liveness, the API's own documents).
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


def allow(*roles: Role, any_principal: bool = False):
    """A dependency that yields the caller when they hold one of `roles` (or, with any_principal, any caller)."""
    if not roles and not any_principal:
        raise ValueError("allow() needs roles or any_principal=True")
    needed = " or ".join(r.value for r in roles)

    async def check(who: Principal = Depends(principal)) -> Principal:
        if any_principal or any(who.has_role(r) for r in roles):
            return who
        raise ApiError(403, "forbidden", f"this action needs the {needed} role")

    check.paygent_roles = tuple(roles) if not any_principal else ("any",)  # read by the route-walk test
    return check
