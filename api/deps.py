"""Request dependencies: the shared clients, and the caller's identity from `Authorization: Bearer <key>`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from web3 import AsyncWeb3

from api.errors import ApiError
from api.ratelimit import RateLimits, client_address
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


def deps(request: Request) -> Deps:
    return request.app.state.deps


async def principal(request: Request, d: Deps = Depends(deps)) -> Principal:
    """The caller, from `Authorization: Bearer <key>`; failures are counted per client address and, past a
    handful a minute, answered 429 before the key is even looked at."""
    address = client_address(request)
    await d.limits.check_address_not_blocked(d.engine, address)
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        await d.limits.record_auth_failure(address)
        raise ApiError(401, "unauthenticated", "Authorization: a 'Bearer <api key>' header is required",
                       "Authorization")
    async with d.engine.connect() as conn:
        who = await authenticate(conn, key.strip())
    if who is None:
        await d.limits.record_auth_failure(address)
        raise ApiError(401, "unauthenticated", "Authorization: the API key is not valid", "Authorization")
    use_tenant(who.tenant_id)  # every transaction of this request is scoped to the caller's tenant (RLS)
    await d.limits.check_request(d.engine, key_id=str(who.user_id), address=address, tenant_id=str(who.tenant_id),
                                 actor=who.actor)
    return who
