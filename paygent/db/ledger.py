"""Double-entry ledger writes for a payment that moved money: one debit, one credit, at most once each."""

from __future__ import annotations

import uuid

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.schema import ledger_entries


def wallet_account(wallet_id: uuid.UUID | str) -> str:
    return f"wallet:{wallet_id}"


async def write_payment_entries(
    conn: AsyncConnection,
    *,
    tenant_id: uuid.UUID | str,
    payment_id: uuid.UUID | str,
    wallet_id: uuid.UUID | str,
    to: str,
    asset: str,
    amount_atomic: int,
    tx_hash: str | None,
) -> None:
    """Debit the wallet, credit the recipient; a second call for the same payment writes nothing."""
    rows = [
        {"account": wallet_account(wallet_id), "amount_atomic": -amount_atomic},
        {"account": f"external:{to}", "amount_atomic": amount_atomic},
    ]
    await conn.execute(
        pg_insert(ledger_entries)
        .values(
            [
                {
                    **r,
                    "tenant_id": uuid.UUID(str(tenant_id)),
                    "payment_id": uuid.UUID(str(payment_id)),
                    "asset": asset,
                    "tx_hash": tx_hash,
                }
                for r in rows
            ]
        )
        .on_conflict_do_nothing(constraint="ledger_one_entry_per_account")
    )
