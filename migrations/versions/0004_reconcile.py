"""reconcile: checkpoints and movements of the ledger-vs-chain reconciler

Revision ID: 0004_reconcile
Revises: 0002, 0003

Hand-written to match paygent/db/reconcile_schema.py. It merges the approvals (0002) and agents (0003) heads,
since it refers to payments and wallets only; another 0004 revision may chain before or after it.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_reconcile"
down_revision = ("0002", "0003")
branch_labels = None
depends_on = None


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
        sa.UniqueConstraint("wallet_id", "asset", "block_number", "tx_hash", "log_index", "kind",
                            name="reconcile_movement_once", postgresql_nulls_not_distinct=True),
    )
    op.create_index("reconcile_movements_wallet_kind", "reconcile_movements", ["wallet_id", "kind"])


def downgrade() -> None:
    op.drop_table("reconcile_movements")
    op.drop_table("reconcile_checkpoints")
