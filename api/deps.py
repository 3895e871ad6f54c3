"""Request dependencies: the shared clients, and the caller's identity from `Authorization: Bearer <key>`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from web3 import AsyncWeb3

from api.admission import Admission
from api.auth_cache import PrincipalCache
from api.errors import ApiError
from api.ratelimit import RateLimits, client_address
from paygent.crypto import hash_api_key
from paygent.db.accounts import Principal, authenticate
from paygent.db.tenancy import use_tenant
from paygent.settings import Settings


@dataclass
class Deps:
    settings: Settings
    engine: AsyncEngine
    temporal: Client
    redis: Redis
    w3: AsyncWeb3  # one HTTP session to the chain for the whole app
    limits: RateLimits
    principals: PrincipalCache | None = None  # None: every request asks Postgres
    admission: Admission | None = None  # None: new payments are never refused for load


def deps(request: Request) -> Deps:
    return request.app.state.deps


def bearer_key(header: str) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, or None when the header is missing or malformed."""
    scheme, _, key = header.partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


async def authenticate_key(d: Deps, address: str, key: str | None, *, field: str = "Authorization") -> Principal:
    """The caller behind an API key, for HTTP requests and WebSocket connections alike.

    Failures are counted per client address and per presented key; past a handful a minute further failures
    are answered 429, while a valid key is always looked up and served (api/ratelimit.py). The principal's tenant
    scopes every transaction from here on (row-level security).
    """
    if key is None:
        await d.limits.record_auth_failure(d.engine, address, None)
        how = "a 'Bearer <api key>' header is required" if field == "Authorization" else "an API key is required"
        raise ApiError(401, "unauthenticated", f"{field}: {how}", field)
    await d.limits.check_key_not_blocked(d.engine, key, address)
    who = await _lookup(d, key)
    if who is None:
        await d.limits.record_auth_failure(d.engine, address, key)
        raise ApiError(401, "unauthenticated", f"{field}: the API key is not valid", field)
    use_tenant(who.tenant_id)  # every transaction of this request is scoped to the caller's tenant (RLS)
    await d.limits.check_request(
        d.engine, key_id=str(who.user_id), address=address, tenant_id=str(who.tenant_id), actor=who.actor
    )
    return who


async def principal(request: Request, d: Deps = Depends(deps)) -> Principal:
    """The caller, from `Authorization: Bearer <key>`."""
    return await authenticate_key(d, client_address(request), bearer_key(request.headers.get("authorization", "")))


async def _lookup(d: Deps, key: str) -> Principal | None:
    """The key's principal: from the short-lived cache when its generation is current, else from Postgres."""
    cache, key_hash = d.principals, hash_api_key(key)
    generation = await cache.generation() if cache else None
    who = cache.get(key_hash, generation) if cache else None
    if who is None:
        async with d.engine.connect() as conn:
            who = await authenticate(conn, key)
        if who is not None and cache:
            cache.put(key_hash, generation, who)
    return who
