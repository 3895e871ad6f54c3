"""Fixtures for agent-run tests: the fake LLM provider server, and a stack whose worker talks to it.

The session `worker`/`api_url` fixtures run with no LLM key, i.e. the offline planner. Tests that script
Anthropic/OpenAI answers use `llm_stack`: a second real worker and API on their own task queue, whose settings
point both providers at the fake server (through the real SDKs).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio

from paygent.db.engine import get_engine
from paygent.settings import Settings
from tests.agents.helpers import serve_api
from tests.fakes.llm_server import FakeLlmServer, fake_llm, fake_llm_server  # noqa: F401  (pytest fixtures)
from tests.x402.conftest import paid_service  # noqa: F401  (pytest fixture: the real x402 paid service)
from workers.main import build_worker


@dataclass
class LlmStack:
    http: httpx.AsyncClient
    settings: Settings


@pytest_asyncio.fixture(scope="session")
async def llm_stack(
    fake_llm_server: FakeLlmServer,  # noqa: F811  (the fixture imported above)
    app_settings,
    temporal_env,
    dev,
) -> AsyncIterator[LlmStack]:
    settings = fake_llm_server.settings().model_copy(
        update={
            **{
                k: getattr(app_settings, k)
                for k in (
                    "database_url",
                    "redis_url",
                    "rpc_url",
                    "token_address",
                    "temporal_address",
                    "master_key",
                    "confirmations",
                )
            },
            "task_queue": f"agent-llm-{uuid.uuid4().hex[:6]}",
        }
    )
    worker = build_worker(temporal_env.client, settings, get_engine(settings.database_url))
    async with worker, serve_api(settings, temporal_env.client) as http:
        yield LlmStack(http=http, settings=settings)
