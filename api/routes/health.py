"""Health a load balancer can use: `/healthz` (liveness) and `/readyz` (readiness), both without an API key.

- `/healthz`: the process answers. It checks nothing else, so a database outage never gets the API restarted.
- `/readyz`: 200 when Postgres and Temporal answer (nothing can be recorded or started without them), 503
  otherwise. Redis (live event feed, approval notifications) and the chain (balances, receipts) down leave
  payments working (recorded and started; the worker retries the chain): 200 with status `degraded`.

Anyone sees which component is up or down; only an admin's key (`Authorization: Bearer ...`) adds the details
(latencies, addresses, error text), since those describe the inside of the deployment. Any other key, valid or
not, gets exactly what an anonymous probe gets (never 401 or 403): a load balancer configured with some key must
still read readiness.
"""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum
from typing import Literal

import sqlalchemy as sa
from eth_utils import to_checksum_address
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.authz import Role, require
from api.deps import Deps, deps, principal
from paygent.db.accounts import Principal

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 3


class Component(StrEnum):
    postgres = "postgres"
    temporal = "temporal"
    redis = "redis"
    chain = "chain"


REQUIRED = (Component.postgres, Component.temporal)  # down: not ready (503); any other down: degraded (200)


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class ComponentDetail(BaseModel):
    up: bool
    latency_ms: float = Field(description="time the check took")
    info: str | None = Field(None, description="what the check saw (version, block, address)")
    error: str | None = Field(None, description="why the check failed")


ReadinessStatus = Literal["ok", "degraded", "unavailable"]


class Readiness(BaseModel):
    status: ReadinessStatus
    components: dict[Component, Literal["up", "down"]]
    details: dict[Component, ComponentDetail] | None = Field(None, description="admins only")


@router.get("/healthz", response_model=Liveness)
async def healthz() -> Liveness:
    """Liveness: the process answers. Restart the API only when this fails."""
    return Liveness()


async def _check(check) -> ComponentDetail:
    started = time.perf_counter()
    try:
        info = await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_SECONDS)
        up, error = True, None
    except Exception as exc:  # a failed check is a report, not an error of this request
        info, up, error = None, False, f"{type(exc).__name__}: {exc}"[:300]
    return ComponentDetail(up=up, latency_ms=round((time.perf_counter() - started) * 1000, 1), info=info, error=error)


def _checks(d: Deps) -> dict[Component, object]:
    async def postgres():
        async with d.engine.connect() as conn:
            return f"migration {await conn.scalar(sa.text('select version_num from alembic_version'))}"

    async def temporal():
        await d.temporal.service_client.check_health()
        return f"{d.settings.temporal_address} namespace {d.settings.temporal_namespace}"

    async def redis():
        await d.redis.ping()
        return "pong"

    async def chain():
        block, chain_id = await d.w3.eth.block_number, await d.w3.eth.chain_id
        token = d.settings.token_address
        if token and not await d.w3.eth.get_code(to_checksum_address(token)):
            raise RuntimeError(f"no contract at token address {token}")
        return f"chain {chain_id} block {block}"

    return {Component.postgres: postgres, Component.temporal: temporal, Component.redis: redis, Component.chain: chain}


async def _admin_or_anonymous(request: Request, d: Deps = Depends(deps)) -> Principal | None:
    """The admin asking for details, or None: no key, a key that is not an admin's, a key that is not valid or
    cannot be checked (Postgres down) all get the summary."""
    if "authorization" not in request.headers:
        return None
    try:
        return require(await principal(request, d), Role.admin)
    except Exception:  # ApiError (401/403/429) included: readiness is answered to every caller
        return None


@router.get(
    "/readyz",
    response_model=Readiness,
    response_model_exclude_none=True,
    responses={503: {"model": Readiness, "description": "Postgres or Temporal is down"}},
)
async def readyz(d: Deps = Depends(deps), admin: Principal | None = Depends(_admin_or_anonymous)):
    """Readiness: route traffic here only while this answers 200."""
    checks = _checks(d)
    results = dict(zip(checks, await asyncio.gather(*(_check(c) for c in checks.values())), strict=False))
    status: ReadinessStatus
    if not all(results[c].up for c in REQUIRED):
        status = "unavailable"
    else:
        status = "ok" if all(r.up for r in results.values()) else "degraded"
    body = Readiness(
        status=status,
        components={c: "up" if r.up else "down" for c, r in results.items()},
        details=results if admin is not None else None,
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True), status_code=503 if status == "unavailable" else 200
    )
