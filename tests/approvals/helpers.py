"""Helpers for the approval tests: payments that need approval, decisions over HTTP and from the CLI, and what a
user would check afterwards (the approval's state, audit rows, the reservation, the chain).

Everything goes through the real API, worker, dev server, Postgres and anvil; polling helpers wait for a state,
they never assert on elapsed wall-clock time.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from paygent.db.reservations import reservations
from paygent.db.schema import audit_log
from paygent.paths import REPO_ROOT
from tests.api.helpers import auth, create, funded_wallet, new_recipient


def tiers(*, timelock: int = 0, timeout: int = 86400) -> dict:
    """Above 100 USDC: 2 of bob, carol, dave, with the given time-lock and approval timeout (seconds)."""
    trio = ["bob", "carol", "dave"]
    return {
        "tiers": [
            {"max_amount": "100", "approvals_required": 0, "approvers": []},
            {
                "max_amount": None,
                "approvals_required": 2,
                "approvers": trio,
                "approval_timeout_seconds": timeout,
                "timelock_seconds": timelock,
            },
        ]
    }


async def wallet_with_policy(http, dev, settings, policy: dict, usdc: int = 10_000) -> dict:
    wallet = await funded_wallet(http, dev, settings, usdc)
    r = await http.put(f"/v1/wallets/{wallet['id']}/approval-policy", json=policy, headers=auth(dev))
    assert r.status_code == 200, r.text
    assert r.json()["source"] == "wallet"
    return wallet


async def pay(http, dev, amount: str, wallet_id: str | None = None, to: str | None = None) -> str:
    """alice asks to pay; returns the payment id once the payment is `awaiting_approval`."""
    body = {
        "wallet_id": wallet_id or dev["wallets"]["treasury"]["id"],
        "to": to or new_recipient(),
        "amount": amount,
        "asset": "USDC",
        "memo": "needs approval",
    }
    r = await create(http, dev, body)
    assert r.status_code == 202, r.text
    payment_id = r.json()["id"]
    await until(lambda: payment(http, dev, payment_id), lambda p: p["status"] == "awaiting_approval")
    await until(lambda: approval(http, dev, payment_id, "bob"), lambda a: a is not None)
    return payment_id


async def payment(http, dev, payment_id: str) -> dict:
    r = await http.get(f"/v1/payments/{payment_id}", headers=auth(dev))
    assert r.status_code == 200, r.text
    return r.json()


async def approval(http, dev, approval_id: str, user: str = "bob") -> dict | None:
    r = await http.get(f"/v1/approvals/{approval_id}", headers=auth(dev, user))
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return r.json()


async def until(read: Callable, ok: Callable, timeout: float = 30.0, step: float = 0.1):
    """Poll `read()` until `ok(value)`; fail with the last value seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await read()
        if ok(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value}")
        await asyncio.sleep(step)


async def decide(http, dev, user: str, approval_id: str, decision: str, body: dict | None = None, **headers):
    return await http.post(f"/v1/approvals/{approval_id}/{decision}", json=body, headers={**auth(dev, user), **headers})


@dataclass
class CliResult:
    code: int
    out: str
    err: str


async def cli(*args: str) -> CliResult:
    """`python -m paygent.cli ...` as a real subprocess (async: the API under test runs in this event loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "paygent.cli",
        *args,
        cwd=str(REPO_ROOT),
        env={**os.environ},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return CliResult(proc.returncode or 0, out.decode(), err.decode())


async def audit_of(engine, approval_id: str, action: str | None = None) -> list[tuple[str, str, str]]:
    """(action, actor, channel) of the approval's audit rows, oldest first."""
    query = (
        sa.select(audit_log.c.action, audit_log.c.actor, audit_log.c.channel)
        .where(audit_log.c.subject_type == "approval", audit_log.c.subject_id == approval_id)
        .order_by(audit_log.c.id)
    )
    async with engine.connect() as conn:
        rows = [tuple(r) for r in await conn.execute(query)]
    return [r for r in rows if action is None or r[0] == action]


async def reservation_status(engine, payment_id: str) -> str | None:
    async with engine.connect() as conn:
        return await conn.scalar(
            sa.select(reservations.c.status).where(reservations.c.payment_id == uuid.UUID(payment_id))
        )
