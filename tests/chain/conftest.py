"""Fixtures for the chain tests: one anvil session, one deployed Paygent USD, fresh funded accounts.

Each test that needs clean balances makes its own brand-new accounts (`new_account`), so exact
balance assertions hold no matter which other tests ran against the same token before.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import pytest
import pytest_asyncio
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3

from paygent.chain.anvil import dev_account
from paygent.chain.rpc import async_web3
from paygent.chain.token import TOKEN_NAME, TOKEN_SYMBOL, deploy_token, mint, send_eth, token_abi

GAS_MONEY_WEI = 10**17  # 0.1 ETH: plenty for a handful of transactions on anvil


@pytest.fixture(scope="session")
def owner() -> LocalAccount:
    """anvil dev account 0: deploys (and therefore owns) the token, relays authorizations."""
    return dev_account(0)


@pytest_asyncio.fixture(scope="session")
async def w3(anvil_rpc: str) -> AsyncWeb3:
    return async_web3(anvil_rpc)


@pytest_asyncio.fixture(scope="session")
async def token(w3: AsyncWeb3, owner: LocalAccount) -> str:
    """A Paygent USD deployed once for the chain tests."""
    return await deploy_token(w3, owner, TOKEN_NAME, TOKEN_SYMBOL)


@pytest.fixture
def contract(w3: AsyncWeb3, token: str):
    """The deployed token as a web3 contract (full ABI, including the (v, r, s) overloads)."""
    return w3.eth.contract(address=token, abi=token_abi())


@pytest.fixture
def new_account(w3: AsyncWeb3, token: str, owner: LocalAccount) -> Callable[..., Awaitable[LocalAccount]]:
    """Factory: a brand-new account, optionally minted `tokens` atomic units and given gas money."""

    async def make(tokens: int = 0, gas: bool = False) -> LocalAccount:
        account = Account.from_key(os.urandom(32))
        if tokens:
            await mint(w3, token, owner, account.address, tokens)
        if gas:
            await send_eth(w3, owner, account.address, GAS_MONEY_WEI)
        return account

    return make
