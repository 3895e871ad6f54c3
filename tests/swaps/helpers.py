"""Shared by the swap tests: quoting and swapping over HTTP, waiting for the end, reading the chain and the ledger."""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa
from web3 import AsyncWeb3

from paygent.chain import uniswap
from paygent.chain.rpc import async_web3
from paygent.chain.token import balance_of
from tests.api.helpers import auth

FINAL = ("confirmed", "failed", "cancelled", "refused")


def body(dev: dict, amount: str = "10", **extra) -> dict:
    return {
        "wallet_id": dev["wallets"]["treasury"]["id"],
        "from_asset": "USDC",
        "to_asset": "EURC",
        "amount": amount,
        **extra,
    }


async def swap(http, dev, b: dict, user: str = "alice", key: str | None = None):
    headers = {**auth(dev, user), "Idempotency-Key": key or uuid.uuid4().hex}
    return await http.post("/v1/swaps", json=b, headers=headers)


async def wait_swap(http, dev, swap_id: str, timeout: float = 90, user: str = "alice", until=FINAL) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await http.get(f"/v1/swaps/{swap_id}", headers=auth(dev, user))
        assert r.status_code == 200, r.text
        view = r.json()
        if view["status"] in until:
            return view
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"swap still {view['status']} after {timeout}s: {view}")
        await asyncio.sleep(0.1)


def w3(rpc: str) -> AsyncWeb3:
    return async_web3(rpc)


async def balances(rpc: str, token: str, eurc: str, holder: str) -> tuple[int, int]:
    chain = w3(rpc)
    return await balance_of(chain, token, holder), await balance_of(chain, eurc, holder)


async def allowance(rpc: str, token: str, owner: str, router: str) -> int:
    return await uniswap.allowance(w3(rpc), token, owner, router)


async def ledger_sum(engine, wallet_id: str, asset: str) -> int:
    from paygent.db.schema import ledger_entries

    async with engine.connect() as conn:
        total = await conn.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(ledger_entries.c.amount_atomic), 0)).where(
                ledger_entries.c.account == f"wallet:{wallet_id}", ledger_entries.c.asset == asset
            )
        )
    return int(total)


async def audit_actions(engine, payment_id: str) -> list[str]:
    from paygent.db.schema import audit_log

    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(audit_log.c.action)
            .where(audit_log.c.subject_type == "payment", audit_log.c.subject_id == payment_id)
            .order_by(audit_log.c.id)
        )
        return [r.action for r in rows]
