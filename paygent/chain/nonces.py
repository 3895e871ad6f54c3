"""One nonce allocator per signing address, in Postgres: the row lock serialises allocation across workers."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.schema import address_nonces


async def allocate_nonce(conn: AsyncConnection, chain_id: int, address: str, chain_pending: int) -> int:
    """Next nonce for `address`, never below what the chain already counts (covers sends made elsewhere).

    Must run inside the transaction that also persists the transaction signed with it.
    """
    await conn.execute(
        pg_insert(address_nonces).values(chain_id=chain_id, address=address, next_nonce=0).on_conflict_do_nothing()
    )
    stored = (
        await conn.execute(
            sa.select(address_nonces.c.next_nonce)
            .where(address_nonces.c.chain_id == chain_id, address_nonces.c.address == address)
            .with_for_update()
        )
    ).scalar_one()  # the row exists: inserted above if it was missing
    nonce = max(stored, chain_pending)
    await conn.execute(
        address_nonces.update()
        .where(address_nonces.c.chain_id == chain_id, address_nonces.c.address == address)
        .values(next_nonce=nonce + 1)
    )
    return nonce
