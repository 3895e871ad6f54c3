"""authority: principal kinds (human, agent), agents, wallet grants, caller-scoped idempotency keys

Revision ID: 0004_authority
Revises: 0002, 0003

Agents are principals with their own API key, so they live in `users` (kind 'agent', owner_id = the admin who
created them): payments, runs and threads keep one foreign key for "who asked". `agents` holds what only an
agent has (its spending policy). `wallet_grants` says who may spend from which wallet. Reservations remember
the agent that asked, so an agent's budget spans all of its wallets. Idempotency keys become per principal.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_authority"
down_revision = ("0002", "0003")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("kind", sa.Text(), server_default="human", nullable=False))
    op.add_column("users", sa.Column("owner_id", sa.UUID(), sa.ForeignKey("users.id"), nullable=True))
    op.create_check_constraint("users_kind", "users", "kind IN ('human', 'agent')")
    op.create_table(
        "agents",
        sa.Column("id", sa.UUID(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("tenant_id", sa.UUID(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("spending_policy", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "wallet_grants",
        sa.Column("wallet_id", sa.UUID(), sa.ForeignKey("wallets.id"), primary_key=True),
        sa.Column("user_id", sa.UUID(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("permission", sa.Text(), primary_key=True),
        sa.Column("tenant_id", sa.UUID(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("granted_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("permission IN ('spend')", name="wallet_grants_permission"),
    )
    op.create_index("wallet_grants_user", "wallet_grants", ["user_id"])
    op.add_column("reservations", sa.Column("agent_id", sa.UUID(), nullable=True))
    op.create_index(
        "reservations_agent_window",
        "reservations",
        ["agent_id", "created_at"],
        postgresql_where=sa.text("agent_id IS NOT NULL"),
    )
    op.add_column("agent_runs", sa.Column("agent_id", sa.UUID(), sa.ForeignKey("users.id"), nullable=True))
    # one principal's Idempotency-Key never answers (or reveals) another's request
    op.drop_constraint("payments_tenant_id_idempotency_key_key", "payments", type_="unique")
    op.create_unique_constraint(
        "payments_idempotency_per_principal", "payments", ["tenant_id", "requested_by", "idempotency_key"]
    )


def downgrade() -> None:
    op.drop_constraint("payments_idempotency_per_principal", "payments", type_="unique")
    op.create_unique_constraint("payments_tenant_id_idempotency_key_key", "payments", ["tenant_id", "idempotency_key"])
    op.drop_column("agent_runs", "agent_id")
    op.drop_index("reservations_agent_window", "reservations")
    op.drop_column("reservations", "agent_id")
    op.drop_table("wallet_grants")
    op.drop_table("agents")
    op.drop_constraint("users_kind", "users")
    op.drop_column("users", "owner_id")
    op.drop_column("users", "kind")
