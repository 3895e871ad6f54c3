"""swaps: each swap's signed transactions (approve, swap, allowance reset), and a ledger entry per account and asset

Revision ID: 0020_swaps_transactions
Revises: 0019_hotpath2_hot_path

A swap is a `payments` row (kind `swap`, asset and amount = its input; its terms in `details.swap`). It signs up to
three transactions, each stored with its nonce in the transaction that allocated the nonce, before the first send
(`swap_transactions`, one row per step; a retry re-sends those bytes). Row-level security as `payment_transactions`
(0005): visible through the payment. A swap books two legs for the same wallet account (the input asset out, the
output asset in): `ledger_one_entry_per_account` becomes unique per (payment, account, asset), same name, so a
transfer's two entries are as before.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0020_swaps_transactions"
down_revision = "0019_hotpath2_hot_path"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "swap_transactions",
        sa.Column("payment_id", sa.UUID(), sa.ForeignKey("payments.id"), primary_key=True),
        sa.Column("step", sa.Text(), primary_key=True),
        sa.Column("tx_hash", sa.Text(), nullable=False, unique=True),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("terms", postgresql.JSONB(astext_type=sa.Text()), nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("step IN ('approve', 'swap', 'reset')", name="swap_transactions_step"),
    )
    op.execute("ALTER TABLE swap_transactions ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE swap_transactions FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY paygent_owner ON swap_transactions TO CURRENT_USER USING (true) WITH CHECK (true)")
    visible = "EXISTS (SELECT 1 FROM payments p WHERE p.id = payment_id)"
    op.execute(f"CREATE POLICY paygent_tenant ON swap_transactions USING ({visible}) WITH CHECK ({visible})")
    op.drop_constraint("ledger_one_entry_per_account", "ledger_entries")
    op.create_unique_constraint("ledger_one_entry_per_account", "ledger_entries", ["payment_id", "account", "asset"])


def downgrade() -> None:
    op.drop_constraint("ledger_one_entry_per_account", "ledger_entries")
    op.create_unique_constraint("ledger_one_entry_per_account", "ledger_entries", ["payment_id", "account"])
    op.drop_table("swap_transactions")
