"""Tables of the reconciler (workflows/reconcile.py): where each wallet's chain scan stopped, and what it saw.

- `reconcile_checkpoints` (wallet, asset): the last block scanned (confirmation depth behind the head) and the
  chain balance at that block. A scan covers `[block_number + 1, safe head]` only, so the cost of a tick grows
  with new blocks, never with history; the checkpoint moves in the same transaction as the rows its range wrote.
- `reconcile_movements`: every movement of a wallet's funds seen on chain, once (unique per wallet, tx and log),
  with what it matched: `payment` (an outgoing transfer of a Paygent payment), `deposit` (incoming funds),
  `gas` (native fees of the wallet's own transactions) or `mismatch` (outgoing funds no payment explains).
  Re-running a block range after a crash inserts nothing twice.
  A payment to the wallet's own address is one Transfer log and two movements: `payment` (out) and
  `self_credit` (the same funds back in).
- `reconcile_mismatches`: what the balance comparison (`paygent.domain.reconcile.compare_balances`) could not
  explain, one row per cause while it lasts: opened once (audited, published), closed when it resolves.
The ledger side of "ledger vs chain" is `ledger_entries` (payments) plus the `deposit`, `gas` and `self_credit`
movements. Migrations: `0008_reconcile.py`, `0012_reconcile_mismatches.py` (row-level security as in 0005).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from paygent.db.schema import Amount, metadata

NATIVE = "ETH"  # the asset name of the chain's native coin in these tables
PAYMENT, DEPOSIT, GAS, MISMATCH, SELF_CREDIT = "payment", "deposit", "gas", "mismatch", "self_credit"
LEDGER_KINDS = (DEPOSIT, GAS, SELF_CREDIT)  # movements the ledger counts besides its payment entries

reconcile_checkpoints = sa.Table(
    "reconcile_checkpoints",
    metadata,
    sa.Column("wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id"), primary_key=True),
    sa.Column("asset", sa.Text, primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("block_number", sa.BigInteger, nullable=False),
    sa.Column("chain_balance", Amount, nullable=False),
    sa.Column("block_hash", sa.Text, nullable=True),  # of `block_number` when scanned: a reorg past it changes it
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

reconcile_movements = sa.Table(
    "reconcile_movements",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id"), nullable=False),
    sa.Column("asset", sa.Text, nullable=False),
    sa.Column("block_number", sa.BigInteger, nullable=False),
    sa.Column("tx_hash", sa.Text, nullable=True),  # NULL for a native balance change no transaction explains
    sa.Column("log_index", sa.Integer, nullable=True),
    sa.Column("kind", sa.Text, nullable=False),  # payment | deposit | gas | mismatch | self_credit
    sa.Column("amount_atomic", Amount, nullable=False),  # signed: negative = out of the wallet
    sa.Column("counterparty", sa.Text, nullable=True),
    sa.Column("payment_id", UUID(as_uuid=True), sa.ForeignKey("payments.id"), nullable=True),
    sa.Column("details", JSONB, nullable=False, server_default="{}"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
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
    sa.Index("reconcile_movements_wallet_kind", "wallet_id", "kind"),
)

reconcile_mismatches = sa.Table(
    "reconcile_mismatches",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id"), nullable=False),
    sa.Column("asset", sa.Text, nullable=False),
    sa.Column("cause", sa.Text, nullable=False),  # paygent.domain.reconcile.MismatchCause
    sa.Column("cause_key", sa.Text, nullable=False),  # which one: e.g. `movement:42`, `payment:<id>`
    sa.Column("amount_atomic", Amount, nullable=False),  # its share of chain minus ledger
    sa.Column("block_number", sa.BigInteger, nullable=False),  # the checkpoint it was found at
    sa.Column("ledger_balance", Amount, nullable=False),  # both balances at that block
    sa.Column("chain_balance", Amount, nullable=False),
    sa.Column("movement_id", sa.BigInteger, sa.ForeignKey("reconcile_movements.id"), nullable=True),
    sa.Column("payment_id", UUID(as_uuid=True), sa.ForeignKey("payments.id"), nullable=True),
    sa.Column("tx_hash", sa.Text, nullable=True),
    sa.Column("counterparty", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("resolved_block", sa.BigInteger, nullable=True),
    sa.Column("resolved_by", sa.Text, nullable=True),  # an operator's resolution (migration 0021): who, and why
    sa.Column("resolution", sa.Text, nullable=True),
    sa.Index(
        "reconcile_mismatch_open_once",
        "wallet_id",
        "asset",
        "cause_key",
        unique=True,
        postgresql_where=sa.text("resolved_at IS NULL"),
    ),
)
