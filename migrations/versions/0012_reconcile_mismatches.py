"""reconcile mismatches: what the balance comparison could not explain, one row per cause, opened and closed

Revision ID: 0012_reconcile_mismatches
Revises: 0017_memory

Hand-written to match `reconcile_mismatches` in paygent/db/reconcile_schema.py, under the row-level security
of 0005. Mismatches recorded before (outgoing `mismatch` movements, already audited) become open rows, so
they are neither lost nor announced again. `paygent_reconcile_mismatches()` (SECURITY DEFINER) gives /metrics
the open ones counted by asset and cause over every tenant, and how many were ever opened.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_reconcile_mismatches"
down_revision = "0017_memory"
branch_labels = None
depends_on = None

TENANT = "NULLIF(current_setting('paygent.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "reconcile_mismatches",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("tenant_id", sa.UUID(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("wallet_id", sa.UUID(), sa.ForeignKey("wallets.id"), nullable=False),
        sa.Column("asset", sa.Text(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("cause_key", sa.Text(), nullable=False),
        sa.Column("amount_atomic", sa.Numeric(78, 0), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("ledger_balance", sa.Numeric(78, 0), nullable=False),
        sa.Column("chain_balance", sa.Numeric(78, 0), nullable=False),
        sa.Column("movement_id", sa.BigInteger(), sa.ForeignKey("reconcile_movements.id"), nullable=True),
        sa.Column("payment_id", sa.UUID(), sa.ForeignKey("payments.id"), nullable=True),
        sa.Column("tx_hash", sa.Text(), nullable=True),
        sa.Column("counterparty", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_block", sa.BigInteger(), nullable=True),
    )
    op.create_index(
        "reconcile_mismatch_open_once",
        "reconcile_mismatches",
        ["wallet_id", "asset", "cause_key"],
        unique=True,
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    op.execute("ALTER TABLE reconcile_mismatches ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE reconcile_mismatches FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY paygent_owner ON reconcile_mismatches TO CURRENT_USER USING (true) WITH CHECK (true)")
    op.execute(
        "CREATE POLICY paygent_tenant ON reconcile_mismatches "
        f"USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT})"
    )
    op.execute("""
        INSERT INTO reconcile_mismatches (tenant_id, wallet_id, asset, cause, cause_key, amount_atomic,
            block_number, ledger_balance, chain_balance, movement_id, tx_hash, counterparty, created_at)
        SELECT m.tenant_id, m.wallet_id, m.asset,
            CASE WHEN m.tx_hash IS NULL THEN 'unexplained_decrease' ELSE 'transfer_out_without_payment' END,
            'movement:' || m.id, m.amount_atomic, m.block_number,
            COALESCE(c.chain_balance, 0) - m.amount_atomic, COALESCE(c.chain_balance, 0),
            m.id, m.tx_hash, m.counterparty, m.created_at
        FROM reconcile_movements m
        LEFT JOIN reconcile_checkpoints c ON c.wallet_id = m.wallet_id AND c.asset = m.asset
        WHERE m.kind = 'mismatch'""")
    op.execute("""
        CREATE FUNCTION paygent_reconcile_mismatches() RETURNS jsonb
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT jsonb_build_object(
                'open', COALESCE((SELECT jsonb_agg(jsonb_build_object('asset', asset, 'cause', cause, 'count', n))
                                  FROM (SELECT asset, cause, count(*) AS n FROM reconcile_mismatches
                                        WHERE resolved_at IS NULL GROUP BY asset, cause) o), '[]'::jsonb),
                'opened', (SELECT count(*) FROM reconcile_mismatches),
                'resolved', (SELECT count(*) FROM reconcile_mismatches WHERE resolved_at IS NOT NULL))
        $$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION paygent_reconcile_mismatches()")
    op.drop_table("reconcile_mismatches")
