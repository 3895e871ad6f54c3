"""Helpers for the x402 session tests: the HTTP calls a user makes, and what they check afterwards."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from paygent.db import reservations as res
from paygent.db.schema import audit_log, ledger_entries
from tests.api.helpers import auth


def session_body(dev, origin: str, budget: str = "0.05", max_price: str | None = "0.02", ttl: int = 120) -> dict:
    body = {"wallet_id": dev["wallets"]["treasury"]["id"], "budget": budget, "ttl_seconds": ttl, "origins": [origin]}
    if max_price is not None:
        body["max_price"] = max_price
    return body


async def start(http, dev, body: dict, user: str = "alice", key: str | None = None):
    return await http.post(
        "/v1/x402/sessions", json=body, headers={**auth(dev, user), "Idempotency-Key": key or uuid.uuid4().hex}
    )


async def fetch(http, dev, session_id: str, url: str, key: str | None = None, user: str = "alice", **extra):
    headers = {**auth(dev, user), **({"Idempotency-Key": key} if key else {})}
    return await http.post(f"/v1/x402/sessions/{session_id}/fetch", json={"url": url, **extra}, headers=headers)


async def status(http, dev, session_id: str, user: str = "alice") -> dict:
    r = await http.get(f"/v1/x402/sessions/{session_id}", headers=auth(dev, user))
    assert r.status_code == 200, r.text
    return r.json()


async def reservation(engine, reservation_id: str) -> tuple[str, int] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(res.reservations.c.status, res.reservations.c.amount_atomic).where(
                    res.reservations.c.payment_id == uuid.UUID(reservation_id)
                )
            )
        ).first()
    return None if row is None else (row.status, int(row.amount_atomic))


async def ledger(engine, payment_id: str) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            account: int(amount)
            for account, amount in (
                await conn.execute(
                    sa.select(ledger_entries.c.account, ledger_entries.c.amount_atomic).where(
                        ledger_entries.c.payment_id == uuid.UUID(payment_id)
                    )
                )
            ).all()
        }


async def audit_rows(engine, subject_id: str, action: str) -> list[dict]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(audit_log.c.channel, audit_log.c.data).where(
                    audit_log.c.subject_id == subject_id, audit_log.c.action == action
                )
            )
        ).all()
    return [{"channel": r.channel, **r.data} for r in rows]
