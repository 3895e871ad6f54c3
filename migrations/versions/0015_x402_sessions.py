"""x402 spending sessions: a budget reserved once, then paid requests against it

Revision ID: 0015_x402_sessions
Revises: 0014_receipt_waits

`x402_sessions` holds one row per session (its terms, status and what it spent); each paid request in a session
is an ordinary x402 payment row whose `session_id` names it. A session reserves its whole budget once, in
`reservations`, under the session's id: that row is no payment, so the reservation's foreign key to `payments`
goes, and a reservation now belongs to a payment or to a session (each paid request moves its price from the
session's reservation to its own).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0015_x402_sessions"
down_revision = "0014_receipt_waits"
branch_labels = None
depends_on = None

TENANT = "NULLIF(current_setting('paygent.tenant_id', true), '')::uuid"
AMOUNT = sa.Numeric(precision=78, scale=0)


def upgrade() -> None:
    op.create_table(
        "x402_sessions",
        sa.Column("id", sa.UUID(), primary_key=True),
        sa.Column("tenant_id", sa.UUID(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("wallet_id", sa.UUID(), sa.ForeignKey("wallets.id"), nullable=False),
        sa.Column("requested_by", sa.UUID(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("asset", sa.Text(), nullable=False),
        sa.Column("budget_atomic", AMOUNT, nullable=False),
        sa.Column("max_price_atomic", AMOUNT, nullable=True),
        sa.Column("spent_atomic", AMOUNT, nullable=False, server_default="0"),
        sa.Column("held_atomic", AMOUNT, nullable=False, server_default="0"),
        sa.Column("origins", ARRAY(sa.Text()), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False, unique=True),
        sa.Column("details", JSONB(), nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.UniqueConstraint("tenant_id", "requested_by", "idempotency_key", name="x402_sessions_idempotency"),
        sa.CheckConstraint("budget_atomic > 0", name="x402_sessions_budget_positive"),
    )
    op.execute("ALTER TABLE x402_sessions ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE x402_sessions FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY paygent_owner ON x402_sessions TO CURRENT_USER USING (true) WITH CHECK (true)")
    op.execute(
        f"CREATE POLICY paygent_tenant ON x402_sessions USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT})"
    )
    op.add_column("payments", sa.Column("session_id", sa.UUID(), sa.ForeignKey("x402_sessions.id"), nullable=True))
    op.create_index("payments_session", "payments", ["session_id"], postgresql_where=sa.text("session_id IS NOT NULL"))
    op.drop_constraint("reservations_payment_id_fkey", "reservations", type_="foreignkey")


def downgrade() -> None:
    op.execute("DELETE FROM reservations r WHERE NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = r.payment_id)")
    op.create_foreign_key("reservations_payment_id_fkey", "reservations", "payments", ["payment_id"], ["id"])
    op.drop_index("payments_session", table_name="payments")
    op.drop_column("payments", "session_id")
    op.drop_table("x402_sessions")
