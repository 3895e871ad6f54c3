"""Small helpers shared by the API tests: auth headers, polling a payment, reading balances on chain."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager

import httpx
import uvicorn
from eth_account import Account
from web3 import AsyncWeb3

from paygent.chain.rpc import async_web3
from paygent.chain.token import balance_of

# uvicorn ends an idle keep-alive connection after 5 s; the clients drop theirs first, so a request never rides on
# one the server is closing (httpx.ReadError after a pause of about 5 s)
KEEP_ALIVE_LIMITS = httpx.Limits(keepalive_expiry=2.0)


def auth(dev: dict, user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {dev['users'][user]['api_key']}"}


def new_recipient() -> str:
    return Account.create().address


def payment_body(dev: dict, to: str, amount: str = "1.5", **extra) -> dict:
    return {
        "wallet_id": dev["wallets"]["treasury"]["id"],
        "to": to,
        "amount": amount,
        "asset": "USDC",
        "memo": "test",
        **extra,
    }


async def create(http, dev, body, key: str | None = None, user: str = "alice"):
    headers = {**auth(dev, user), "Idempotency-Key": key or uuid.uuid4().hex}
    return await http.post("/v1/payments", json=body, headers=headers)


async def wait_final(http, dev, payment_id: str, timeout: float = 60, user: str = "alice") -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await http.get(f"/v1/payments/{payment_id}", headers=auth(dev, user))
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in ("confirmed", "failed", "cancelled", "refused", "reorged_out"):
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"payment still {body['status']} after {timeout}s: {body}")
        await asyncio.sleep(0.1)


async def token_balance(rpc_url: str, token: str, holder: str) -> int:
    return await balance_of(async_web3(rpc_url), token, holder)


async def transfers_to(rpc_url: str, token: str, recipient: str) -> int:
    """How many Transfer events on chain credited `recipient` (each one is one execution)."""
    w3 = async_web3(rpc_url)
    topic = AsyncWeb3.keccak(text="Transfer(address,address,uint256)")
    logs = await w3.eth.get_logs(
        {
            "fromBlock": 0,
            "toBlock": "latest",
            "address": token,
            "topics": [topic, None, "0x" + "0" * 24 + recipient[2:].lower()],
        }
    )
    return len(logs)


async def funded_wallet(http, dev, settings, usdc: int, eurc: int = 0) -> dict:
    """A new wallet created through the API (alice granted `spend` on it), with 1 ETH for gas, `usdc` USDC and
    `eurc` EURC (the second registered asset)."""
    from paygent.chain.anvil import dev_account
    from paygent.chain.token import mint, send_eth

    r = await http.post("/v1/wallets", json={"name": f"agent-{uuid.uuid4().hex[:8]}"}, headers=auth(dev))
    assert r.status_code == 201, r.text
    wallet = r.json()
    granted = await http.put(
        f"/v1/wallets/{wallet['id']}/grants",
        headers=auth(dev),
        json={"grants": [{"principal_id": dev["users"]["alice"]["id"], "permission": "spend"}]},
    )
    assert granted.status_code == 200, granted.text
    w3 = async_web3(settings.rpc_url)
    await send_eth(w3, dev_account(0), wallet["address"], 10**18)
    if usdc:
        await mint(w3, settings.token_address, dev_account(0), wallet["address"], usdc * 10**6)
    if eurc:
        await mint(w3, eurc_address(settings), dev_account(0), wallet["address"], eurc * 10**6)
    return wallet


def eurc_address(settings) -> str:
    """EURC's token address, from the settings' asset registry (tests/conftest.py registers it)."""
    asset = settings.asset_registry().get(settings.chain_id, "EURC")
    assert asset is not None, "EURC is not in the asset registry"
    return asset.address


@asynccontextmanager
async def serve_api(settings, client, **app_options):
    """The real API on a free port with these settings (e.g. another task queue), and an HTTP client for it.
    `app_options` go to create_app (e.g. tracer_provider)."""
    from api.app import create_app, server_options
    from paygent.netutil import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, temporal=client, **app_options),
            **server_options(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30, limits=KEEP_ALIVE_LIMITS) as http:
            yield http
    finally:
        server.should_exit = True
        await task
