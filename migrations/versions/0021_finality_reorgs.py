"""finality: reversals in the ledger, the block hash of each reconcile checkpoint, operator-resolved mismatches

Revision ID: 0021_finality_reorgs
Revises: 0020_swaps_transactions

- `ledger_entries.entry`: `payment` (the debit/credit pair a confirmed payment writes) or `reversal` (the
  compensating pair when a reorg deeper than the confirmation depth dropped the payment's transaction and its
  nonce went to another). One entry per (payment, account, asset, entry): booked once and reversed once.
- `reconcile_checkpoints.block_hash`: the hash of the checkpoint's block when it was scanned; a tick that finds
  another block at that height (or none) knows a reorg passed the checkpoint and scans the range again.
- `reconcile_mismatches.resolved_by` / `resolution`: who resolved a mismatch by hand and why (a reorged-out
  payment's mismatch stays open until an admin resolves it: `POST .../mismatches/{id}/resolve`).
"""

import sqlalchemy as sa
from alembic import op

revision = "0021_finality_reorgs"
down_revision = "0020_swaps_transactions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger_entries", sa.Column("entry", sa.Text, nullable=False, server_default="payment"))
    op.drop_constraint("ledger_one_entry_per_account", "ledger_entries", type_="unique")
    op.create_unique_constraint(
        "ledger_one_entry_per_account", "ledger_entries", ["payment_id", "account", "asset", "entry"]
    )
    op.add_column("reconcile_checkpoints", sa.Column("block_hash", sa.Text, nullable=True))
    op.add_column("reconcile_mismatches", sa.Column("resolved_by", sa.Text, nullable=True))
    op.add_column("reconcile_mismatches", sa.Column("resolution", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("reconcile_mismatches", "resolution")
    op.drop_column("reconcile_mismatches", "resolved_by")
    op.drop_column("reconcile_checkpoints", "block_hash")
    op.execute("DELETE FROM ledger_entries WHERE entry <> 'payment'")
    op.drop_constraint("ledger_one_entry_per_account", "ledger_entries", type_="unique")
    op.create_unique_constraint("ledger_one_entry_per_account", "ledger_entries", ["payment_id", "account", "asset"])
    op.drop_column("ledger_entries", "entry")
