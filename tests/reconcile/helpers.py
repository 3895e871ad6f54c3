"""Reading what the reconciler left behind: reservations, ledger rows, audit rows, the reconciliation view."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from paygent.db.reservations import reservations
from paygent.db.schema import audit_log, ledger_entries
from tests.api.helpers import auth


async def reservation_status(db_engine, payment_id: str) -> str | None:
    async with db_engine.connect() as conn:
        return await conn.scalar(
            sa.select(reservations.c.status).where(reservations.c.payment_id == uuid.UUID(payment_id))
        )


async def ledger_rows(db_engine, payment_id: str) -> list:
    async with db_engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    sa.select(ledger_entries)
                    .where(ledger_entries.c.payment_id == uuid.UUID(payment_id))
                    .order_by(ledger_entries.c.id)
                )
            )
            .mappings()
            .all()
        )


async def audit_actions(db_engine, subject_type: str, subject_id: str) -> list[str]:
    async with db_engine.connect() as conn:
        return list(
            (
                await conn.scalars(
                    sa.select(audit_log.c.action)
                    .where(audit_log.c.subject_type == subject_type, audit_log.c.subject_id == subject_id)
                    .order_by(audit_log.c.id)
                )
            ).all()
        )


async def reconciliation(http, dev, wallet_id: str, user: str = "alice") -> dict:
    r = await http.get(f"/v1/wallets/{wallet_id}/reconciliation", headers=auth(dev, user))
    assert r.status_code == 200, r.text
    return r.json()


def asset(view: dict, name: str) -> dict:
    return next(a for a in view["assets"] if a["asset"] == name)


async def ledger_equals_chain(http, dev, wallet_id: str, block: int = 0) -> bool:
    """True once the wallet's USDC checkpoint is at or past `block` and ledger == chain there."""
    view = await reconciliation(http, dev, wallet_id)
    usdc = [a for a in view["assets"] if a["asset"] == "USDC"]
    return (
        bool(usdc)
        and usdc[0]["checkpoint_block"] >= block
        and usdc[0]["ledger_balance_atomic"] == usdc[0]["chain_balance_atomic"]
    )


async def assert_replays(client, *workflow_ids: str) -> None:
    """The current workflow code (the worker's replayer) replays these histories without a nondeterminism error."""
    from tests.workflows.replay_support import replayer

    for wid in workflow_ids:
        await replayer().replay_workflow(await client.get_workflow_handle(wid).fetch_history())
