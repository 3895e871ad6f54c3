"""reconcile: checkpoints and movements of the ledger-vs-chain reconciler, under row-level security

Revision ID: 0008_reconcile
Revises: 0007_ops_state

Hand-written to match paygent/db/reconcile_schema.py. Both tables carry `tenant_id` and get the same policies
as the tables of 0005. The reconciler must list tenants before it has one, which row-level security on
`tenants` forbids to the application role: `paygent_tenant_ids()` (SECURITY DEFINER) answers only that.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_reconcile"
down_revision = "0007_ops_state"
branch_labels = None
depends_on = None

TENANT = "NULLIF(current_setting('paygent.tenant_id', true), '')::uuid"
TABLES = ("reconcile_checkpoints", "reconcile_movements")


def upgrade() -> None:
    op.create_table(
        "reconcile_checkpoints",
        sa.Column("wallet_id", sa.UUID(), sa.ForeignKey("wallets.id"), primary_key=True),
        sa.Column("asset", sa.Text(), primary_key=True),
        sa.Column("tenant_id", sa.UUID(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("chain_balance", sa.Numeric(78, 0), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_table(
        "reconcile_movements",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("tenant_id", sa.UUID(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("wallet_id", sa.UUID(), sa.ForeignKey("wallets.id"), nullable=False),
        sa.Column("asset", sa.Text(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=True),
        sa.Column("log_index", sa.Integer(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("amount_atomic", sa.Numeric(78, 0), nullable=False),
        sa.Column("counterparty", sa.Text(), nullable=True),
        sa.Column("payment_id", sa.UUID(), sa.ForeignKey("payments.id"), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.UniqueConstraint(
            "wallet_id",
            "asset",
            "block_number",
            "tx_hash",
            "log_index",
            "kind",
            name="reconcile_movement_once",
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index("reconcile_movements_wallet_kind", "reconcile_movements", ["wallet_id", "kind"])
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY paygent_owner ON {table} TO CURRENT_USER USING (true) WITH CHECK (true)")
        op.execute(
            f"CREATE POLICY paygent_tenant ON {table} USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT})"
        )
    op.execute("""
        CREATE FUNCTION paygent_tenant_ids() RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT id FROM tenants ORDER BY created_at, id
        $$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION paygent_tenant_ids()")
    op.drop_table("reconcile_movements")
    op.drop_table("reconcile_checkpoints")
