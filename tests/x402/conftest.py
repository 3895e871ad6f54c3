"""Fixtures for the x402 tests: the real paid service (uvicorn, in-process) on anvil, and payment rows.

Nothing is mocked: the service is `paygent.x402.paid_service` with the official x402 middleware and
the SDK's facilitator settling on the session's anvil; payers sign with the official SDK client.
Each test gets its own service instance with a brand-new `pay_to` address, so balances are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio
import sqlalchemy as sa
import uvicorn
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3

from paygent.chain.anvil import dev_account
from paygent.chain.rpc import async_web3
from paygent.chain.token import mint
from paygent.db.schema import payments
from paygent.egress import EgressPolicy
from paygent.netutil import free_port
from paygent.x402.paid_service import create_paid_service
from paygent.x402.policy import X402Policy
from tests.egress import exempt, host_port

FACILITATOR_INDEX = 9  # as in `python -m paygent.x402`
HOLD_SECONDS = 5.0  # /flaky holds its first answer this long at most; clients give up after SHORT_TIMEOUT
SHORT_TIMEOUT = 0.5


@dataclass
class PaidService:
    url: str
    pay_to: str
    egress: EgressPolicy  # the egress policy with this service exempted, for calling the x402 client directly


@pytest_asyncio.fixture(scope="session")
async def w3(anvil_rpc: str) -> AsyncWeb3:
    return async_web3(anvil_rpc)


@pytest_asyncio.fixture
async def paid_service(request, anvil_rpc: str, token_address: str, redis_url: str) -> AsyncIterator[PaidService]:
    """The paid service on a free port, paying a fresh address; stopped after the test.

    Loopback is refused by the egress policy: the service is exempted (host:port) in a policy handed to the
    test, and in the shared `app_settings` (API and worker) when the test uses them.
    """
    pay_to = Account.from_key(os.urandom(32)).address
    app = create_paid_service(
        anvil_rpc,
        token_address,
        pay_to,
        dev_account(FACILITATOR_INDEX).key.hex(),
        redis_url=redis_url,
        flaky_hold_seconds=HOLD_SECONDS,
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    settings = request.getfixturevalue("app_settings") if "app_settings" in request.fixturenames else None
    with exempt(settings, url) if settings is not None else contextlib.nullcontext():
        yield PaidService(url=url, pay_to=pay_to, egress=EgressPolicy(host_port(url)))
    server.should_exit = True
    await task


@pytest.fixture
def new_payer(w3: AsyncWeb3, token_address: str) -> Callable[..., Awaitable[LocalAccount]]:
    """Factory: a brand-new account holding `tokens` atomic units (no ETH: the facilitator pays gas)."""

    async def make(tokens: int = 0) -> LocalAccount:
        account = Account.from_key(os.urandom(32))
        if tokens:
            await mint(w3, token_address, dev_account(0), account.address, tokens)
        return account

    return make


@pytest.fixture
def policy(token_address: str) -> X402Policy:
    """A wallet policy capping one request at 0.05 USDC in our token on anvil."""
    return X402Policy(max_amount_atomic=50_000, allowed_assets=[token_address], network="eip155:31337")


@pytest.fixture
def new_x402_payment(db_engine, dev, token_address) -> Callable[..., Awaitable[str]]:
    """Factory: a pending x402 payment row for the dev tenant's treasury wallet; returns its id.

    The columns the x402 activities do not own get plain values: `amount_atomic` is the cap,
    `to_address` the zero address until the requirements are known.
    """

    async def make(url: str, cap: int = 50_000, wallet_id: str | None = None) -> str:
        pid = uuid.uuid4()
        async with db_engine.begin() as conn:
            await conn.execute(
                payments.insert().values(
                    id=pid,
                    tenant_id=uuid.UUID(dev["tenant"]["id"]),
                    wallet_id=uuid.UUID(wallet_id or dev["wallets"]["treasury"]["id"]),
                    requested_by=uuid.UUID(dev["users"]["alice"]["id"]),
                    idempotency_key=f"x402-test-{pid}",
                    request_hash="test",
                    kind="x402",
                    chain_id=31337,
                    asset="USDC",
                    token_address=token_address,
                    to_address="0x" + "0" * 40,
                    amount_atomic=cap,
                    status="pending",
                    workflow_id=f"payment-{pid}",
                    details={"url": url},
                )
            )
        return str(pid)

    return make


async def payment_details(db_engine, payment_id: str) -> dict:
    async with db_engine.connect() as conn:
        return await conn.scalar(sa.select(payments.c.details).where(payments.c.id == uuid.UUID(payment_id)))
