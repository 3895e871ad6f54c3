"""The FastAPI application. `create_app()` for uvicorn (`paygent api`); tests pass their own settings."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api import docs, errors, json_body, metrics, openapi
from api.admission import Admission
from api.auth_cache import PrincipalCache
from api.deps import Deps
from api.mcp import route as mcp_route
from api.mcp.server import build_server as build_mcp_server
from api.ratelimit import RateLimits
from api.routes import (
    agent_runs,
    agents,
    approvals,
    audit,
    health,
    memory,
    paid_services,
    payments,
    reconciliation,
    swaps,
    threads,
    wallets,
    webhooks,
    ws,
    x402_sessions,
)
from api.text_guard import QueryTextGuard
from paygent import tracing
from paygent.chain.rpc import async_web3
from paygent.db.engine import get_engine
from paygent.settings import Settings, get_settings


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for serving this app: forwarded headers are believed only from the operator's proxies
    (PAYGENT_TRUSTED_PROXIES); uvicorn's default would believe anyone connecting from 127.0.0.1 or ::1."""
    trusted = settings.trusted_proxy_list()
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted or []}


def create_app(
    settings: Settings | None = None, temporal: Client | None = None, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    """`temporal`: a connected client to use as is (tests); else one is connected at startup, with the
    tracing interceptor when tracing is on. `tracer_provider`: else from the environment (OTLP or off)."""
    settings = settings or get_settings()
    provider = tracer_provider or tracing.tracer_provider("paygent-api")
    mcp = build_mcp_server()  # one per app: its session manager runs in this app's lifespan

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        client = temporal or await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
            interceptors=tracing.temporal_interceptors(provider),
        )
        redis = Redis.from_url(settings.redis_url)
        w3 = async_web3(settings.rpc_url)
        app.state.deps = Deps(
            settings=settings,
            engine=get_engine(settings.database_url),
            temporal=client,
            redis=redis,
            w3=w3,
            limits=RateLimits.from_settings(settings),
            principals=PrincipalCache(redis),
            admission=Admission(
                client,
                settings.task_queue,
                settings.max_payments_in_flight,
                settings.admission_retry_after_seconds,
            ),
        )
        async with mcp_route.lifespan(mcp):
            yield
        await redis.aclose()
        await w3.provider.disconnect()
        if provider is not None:
            provider.force_flush()

    app = FastAPI(
        title="Paygent",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Durable control plane for AI agents that spend money.",
    )
    errors.install(app)
    app.add_middleware(json_body.UniqueJsonKeys)  # inside the size limit: it reads bounded bodies only
    app.add_middleware(errors.BodySizeLimit, limit=settings.max_body_bytes)
    app.add_middleware(QueryTextGuard)  # body fields are SafeText in the models; query parameters are checked here
    app.state.metrics = metrics.ApiMetrics()
    app.add_middleware(metrics.RequestMetrics, metrics=app.state.metrics)  # outside the limit: counts 413s
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(payments.router)
    app.include_router(wallets.router)
    app.include_router(agent_runs.router)
    app.include_router(threads.router)
    app.include_router(approvals.router)  # approvals, decisions, payment edits, approval policies
    app.include_router(webhooks.router)
    app.include_router(agents.router)
    app.include_router(audit.router)
    app.include_router(ws.router)  # GET /v1/ws: agent runs over a WebSocket
    app.include_router(reconciliation.router)
    app.include_router(paid_services.router)
    app.include_router(memory.router)  # /v1/memory: items, search, partitions, recall, stats, grants
    app.include_router(x402_sessions.router)  # x402 spending sessions
    app.include_router(swaps.router)  # token swaps on a Uniswap V2 router
    app.include_router(mcp_route.router(mcp))  # MCP over Streamable HTTP at /mcp
    docs.install(app)
    openapi.install(app)
    if provider is not None:
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls="metrics,healthz,readyz")
    return app
