"""GET /healthz: each dependency reported separately, 503 when any is down."""

from __future__ import annotations

import asyncio
import time

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.deps import Deps, deps

router = APIRouter(tags=["health"])


async def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), timeout=3)
        return {"ok": True, "detail": detail, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    except Exception as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}


@router.get("/healthz")
async def healthz(d: Deps = Depends(deps)):
    async def postgres():
        async with d.engine.connect() as conn:
            return f"migration {await conn.scalar(sa.text('select version_num from alembic_version'))}"

    async def redis():
        await d.redis.ping()
        return "pong"

    async def temporal():
        await d.temporal.service_client.check_health()
        return f"{d.settings.temporal_address} namespace {d.settings.temporal_namespace}"

    async def chain():
        w3 = d.w3
        block = await w3.eth.block_number
        chain_id = await w3.eth.chain_id
        token = d.settings.token_address
        if token and not await w3.eth.get_code(token):
            raise RuntimeError(f"no contract at token address {token}")
        return f"chain {chain_id} block {block}"

    names = ("temporal", "postgres", "redis", "chain")
    results = await asyncio.gather(*(_timed(c) for c in (temporal, postgres, redis, chain)))
    body = {"ok": all(r["ok"] for r in results), "components": dict(zip(names, results))}
    return JSONResponse(body, status_code=200 if body["ok"] else 503)
