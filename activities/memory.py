"""`memory.prune_expired`: delete up to a batch of expired memory items per tenant, each tenant in its own
transaction (row-level security), with the texts recalled from them."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from paygent.db.memory_schema import memory_texts
from paygent.db.reconcile import tenant_ids
from paygent.db.tenancy import tenant_transaction
from paygent.memory.embedding import LOCAL_MODEL, Embedder
from paygent.memory.store import MemoryStore
from workflows import memory_types as m

log = logging.getLogger("paygent.memory")


class MemoryActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.store = MemoryStore(engine, None, Embedder(LOCAL_MODEL))  # pruning needs neither cache nor model

    @activity.defn(name=m.ACT_PRUNE)
    async def prune_expired(self, batch_size: int) -> m.PruneResult:
        async with self.engine.connect() as conn:
            tenants = await tenant_ids(conn)
        removed, more = 0, False
        for tenant_id in tenants:
            async with tenant_transaction(self.engine, tenant_id) as conn:
                gone = await self.store.prune_expired(conn, batch_size)
                for owner, scope in {(o, s) for o, s, _, _ in gone}:
                    keys = [k for o, s, k, _ in gone if (o, s) == (owner, scope)]
                    await conn.execute(
                        memory_texts.delete().where(
                            memory_texts.c.owner_id == owner,
                            memory_texts.c.scope == scope,
                            memory_texts.c.item_key == sa.any_(sa.cast(keys, ARRAY(sa.Text))),
                        )
                    )
            removed += len(gone)
            more = more or len(gone) == batch_size
        if removed:
            log.info("memory cleanup: %d expired items removed", removed)
        return m.PruneResult(removed=removed, more=more)
