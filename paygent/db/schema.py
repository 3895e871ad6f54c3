"""The relational schema. Alembic migrations in `migrations/` create it; this module describes it for queries.

Amounts are NUMERIC(78, 0) in atomic units (fits uint256); never floats.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = sa.MetaData()

# The largest values of Postgres's INTEGER and BIGINT: every integer an API caller sends to be compared with such
# a column is bounded by them (a larger one is refused with 422 naming it, instead of failing in the driver).
INTEGER_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1


class AtomicAmount(sa.TypeDecorator):
    """NUMERIC(78, 0). A Python int compared with such a column is sent as NUMERIC too: by default SQLAlchemy
    types the int by its own value (a BIGINT bind), so any amount past 2**63 - 1 failed in the driver
    ("value out of int64 range") although the column holds uint256."""

    impl = sa.Numeric(78, 0)
    cache_ok = True

    def coerce_compared_value(self, op, value):
        return self


Amount = AtomicAmount()


def _ts(name: str = "created_at") -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    _ts(),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("api_key_hash", sa.Text, nullable=False, unique=True),
    sa.Column("roles", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("kind", sa.Text, nullable=False, server_default="human"),  # human | agent
    sa.Column("owner_id", UUID(as_uuid=True), sa.ForeignKey("users.id"), nullable=True),  # an agent's admin
    _ts(),
    sa.UniqueConstraint("tenant_id", "name"),
)

# What only an agent has; the agent itself is a `users` row (kind 'agent') so it can hold a key and own rows.
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", UUID(as_uuid=True), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("spending_policy", JSONB, nullable=False, server_default="{}"),  # paygent.domain.spending
    _ts(),
    sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
)

wallets = sa.Table(
    "wallets",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("address", sa.Text, nullable=False, unique=True),
    # AES-256-GCM(master key, private key, associated data = wallet id); never leaves the signer
    sa.Column("encrypted_key", sa.LargeBinary, nullable=False),
    _ts(),
    sa.UniqueConstraint("tenant_id", "name"),
)

# Who may spend from which wallet (besides holding the requester role). Humans and agents alike.
wallet_grants = sa.Table(
    "wallet_grants",
    metadata,
    sa.Column("wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id"), primary_key=True),
    sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("permission", sa.Text, primary_key=True),  # spend
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("granted_by", sa.Text, nullable=False),
    _ts(),
)

# One nonce allocator per signing address: the row lock serialises allocation across workers.
address_nonces = sa.Table(
    "address_nonces",
    metadata,
    sa.Column("chain_id", sa.BigInteger, primary_key=True),
    sa.Column("address", sa.Text, primary_key=True),
    sa.Column("next_nonce", sa.BigInteger, nullable=False),
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id"), nullable=False),
    sa.Column("requested_by", UUID(as_uuid=True), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("request_hash", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False, server_default="transfer"),
    sa.Column("chain_id", sa.BigInteger, nullable=False),
    sa.Column("asset", sa.Text, nullable=False),
    sa.Column("token_address", sa.Text, nullable=False),
    sa.Column("to_address", sa.Text, nullable=False),
    sa.Column("amount_atomic", Amount, nullable=False),
    sa.Column("memo", sa.Text, nullable=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("failure_reason", sa.Text, nullable=True),
    sa.Column("workflow_id", sa.Text, nullable=False, unique=True),
    sa.Column("nonce", sa.BigInteger, nullable=True),
    sa.Column("signed_tx", sa.LargeBinary, nullable=True),
    sa.Column("tx_hash", sa.Text, nullable=True, unique=True),
    sa.Column("block_number", sa.BigInteger, nullable=True),
    sa.Column("details", JSONB, nullable=False, server_default="{}"),
    sa.Column("session_id", UUID(as_uuid=True), nullable=True),  # x402_sessions.id: a paid request in a session
    _ts(),
    _ts("updated_at"),
    # an Idempotency-Key belongs to the principal that sent it: another's never answers or reveals it
    sa.UniqueConstraint("tenant_id", "requested_by", "idempotency_key", name="payments_idempotency_per_principal"),
    sa.CheckConstraint("amount_atomic > 0", name="payments_amount_positive"),
)

# Every transaction signed for a payment: the first, and any fee-bumped replacement with the same nonce.
# Whichever one lands is the payment's single execution (`payments.tx_hash` then names it).
payment_transactions = sa.Table(
    "payment_transactions",
    metadata,
    sa.Column("tx_hash", sa.Text, primary_key=True),
    sa.Column("payment_id", UUID(as_uuid=True), sa.ForeignKey("payments.id"), nullable=False, index=True),
    sa.Column("nonce", sa.BigInteger, nullable=False),
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Column("max_fee_per_gas", Amount, nullable=False),
    sa.Column("max_priority_fee_per_gas", Amount, nullable=False),
    _ts(),
)

# The transactions a swap signs (approve, swap, allowance reset), one row per step: nonce and bytes stored before
# the first send, in the transaction that allocated the nonce (activities/swaps.py).
swap_transactions = sa.Table(
    "swap_transactions",
    metadata,
    sa.Column("payment_id", UUID(as_uuid=True), sa.ForeignKey("payments.id"), primary_key=True),
    sa.Column("step", sa.Text, primary_key=True),
    sa.Column("tx_hash", sa.Text, nullable=False, unique=True),
    sa.Column("nonce", sa.BigInteger, nullable=False),
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Column("terms", JSONB, nullable=False, server_default="{}"),
    _ts(),
)

# Double entry: every confirmed payment writes one debit and one credit that sum to zero per asset.
ledger_entries = sa.Table(
    "ledger_entries",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("payment_id", UUID(as_uuid=True), sa.ForeignKey("payments.id"), nullable=False),
    sa.Column("account", sa.Text, nullable=False),  # "wallet:<uuid>" or "external:<address>"
    sa.Column("asset", sa.Text, nullable=False),
    sa.Column("amount_atomic", Amount, nullable=False),  # negative = debit, positive = credit
    sa.Column("tx_hash", sa.Text, nullable=True),
    # `payment`, or `reversal`: the compensating pair of a payment a deep reorg undid (migration 0021)
    sa.Column("entry", sa.Text, nullable=False, server_default="payment"),
    _ts(),
    # per asset: a swap books the wallet twice, the input asset out and the output asset in (migration 0020);
    # per entry: a reversal beside the payment's own rows (migration 0021)
    sa.UniqueConstraint("payment_id", "account", "asset", "entry", name="ledger_one_entry_per_account"),
)

# Append-only, hash-chained: each row carries the previous row's hash; a trigger refuses UPDATE and DELETE.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),  # api, cli, mcp, temporal, system
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("subject_type", sa.Text, nullable=False),
    sa.Column("subject_id", sa.Text, nullable=False),
    sa.Column("data", JSONB, nullable=False, server_default="{}"),
    sa.Column("prev_hash", sa.Text, nullable=False),
    sa.Column("hash", sa.Text, nullable=False, unique=True),
    sa.Column("chain", sa.Text, nullable=True),  # which hash chain (paygent/db/audit.py); NULL: the first one
    sa.Index("audit_log_subject", "subject_type", "subject_id"),
    sa.Index("audit_log_chain_newest", "chain", sa.text("id DESC")),
)

# --- Approvals (issue 3): policies per tenant or wallet, one row per approval for listing, webhook targets. ---

# A tenant's default policy has wallet_id NULL; NULLS NOT DISTINCT keeps it to one row per scope (PostgreSQL 15+).
approval_policies = sa.Table(
    "approval_policies",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("wallet_id", UUID(as_uuid=True), sa.ForeignKey("wallets.id"), nullable=True),
    sa.Column("policy", JSONB, nullable=False),  # paygent.domain.approval_policy.ApprovalPolicy as JSON
    sa.Column("updated_by", sa.Text, nullable=False),
    _ts(),
    _ts("updated_at"),
    sa.UniqueConstraint("tenant_id", "wallet_id", name="approval_policies_scope", postgresql_nulls_not_distinct=True),
)

# The ApprovalWorkflow's state as of its latest decision (written by its audit activity, newest revision wins),
# so the API lists "pending approvals for user X" with `status = 'pending' AND X = ANY(awaiting)`.
approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),  # approval id (for a payment: the payment id)
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("workflow_id", sa.Text, nullable=False, unique=True),
    sa.Column("payment_id", sa.Text, nullable=True),
    sa.Column("initiator", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # paygent.domain.approval_state.ApprovalStatus
    sa.Column("approvals_had", sa.Integer, nullable=False),
    sa.Column("approvals_needed", sa.Integer, nullable=False),
    sa.Column("operation_hash", sa.Text, nullable=False),
    sa.Column("operation", JSONB, nullable=False),
    sa.Column("amount_atomic", Amount, nullable=False),
    sa.Column("approvers", ARRAY(sa.Text), nullable=False, server_default="{}"),  # the current tier's set
    sa.Column("approved_by", ARRAY(sa.Text), nullable=False, server_default="{}"),  # counted tier approvers
    sa.Column("awaiting", ARRAY(sa.Text), nullable=False, server_default="{}"),  # who may still approve
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("timelock_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("decided_by", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("revision", sa.Integer, nullable=False),
    _ts(),
    _ts("updated_at"),
    sa.Index("approvals_tenant_status", "tenant_id", "status"),
    sa.Index("approvals_awaiting", "awaiting", postgresql_using="gin"),
)

# Where approval events are POSTed; the body is signed with HMAC-SHA256(secret) in X-Paygent-Signature.
# The secret must be readable to sign with, so it is stored as given (rotate it by replacing the row).
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    # the signing secret, sealed under the master key (paygent.crypto.seal_webhook_secret); never stored in clear
    sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
    sa.Column("events", ARRAY(sa.Text), nullable=False, server_default="{}"),  # empty: every event type
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    _ts(),
)
