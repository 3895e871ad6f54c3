"""the follower's finality check, between reorgs, reads only what a reorg left waiting to land again

Revision ID: 0022_reorg_pending_index
Revises: 0021_finality_reorgs

Every FINALITY_CHECK_SECONDS the chain follower looks for confirmed payments that a reorg took out of the chain
and that have not landed again (paygent/db/finality.py `booked_recent`, window=False). It read every tenant in
turn, each a scan of its confirmed payments (an OR over a JSONB key has no index): CPU that grew with the
table and the number of tenants, while almost always nothing is pending.

- `payments_reorg_pending`: a partial index on the rows that carry a reorg (`details ? 'reorged'`), a handful.
- `paygent_reorg_pending_tenants()` (SECURITY DEFINER, as 0014's `paygent_receipt_wait_tenants`): the tenants
  that have such payments, so the follower opens a tenant's transaction only where there is something to check.
"""

from alembic import op

revision = "0022_reorg_pending_index"
down_revision = "0021_finality_reorgs"
branch_labels = None
depends_on = None

PENDING = "status = 'confirmed' AND details ? 'reorged' AND details -> 'reorged' ->> 'to_block' IS NULL"


def upgrade() -> None:
    op.execute("CREATE INDEX payments_reorg_pending ON payments (tenant_id) WHERE details ? 'reorged'")
    op.execute(f"""
        CREATE FUNCTION paygent_reorg_pending_tenants() RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT DISTINCT tenant_id FROM payments WHERE {PENDING}
        $$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION paygent_reorg_pending_tenants()")
    op.execute("DROP INDEX payments_reorg_pending")
