"""receipt waits: payments waiting for their receipt, followed by one chain follower per chain

Revision ID: 0014_receipt_waits
Revises: 0012_reconcile_mismatches

Hand-written to match paygent/db/receipt_waits.py. The receipt wait activity registers a row (the payment, the
terms that were signed, its task token) and completes asynchronously; the chain follower
(activities/chain_follower.py) completes it and deletes the row. Row-level security as in 0005. The follower
works across tenants: `paygent_receipt_wait_tenants(chain, task queue)` (SECURITY DEFINER) names the tenants
that have waits, and it then reads each tenant's rows in that tenant's transaction.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014_receipt_waits"
down_revision = "0012_reconcile_mismatches"
branch_labels = None
depends_on = None

TENANT = "NULLIF(current_setting('paygent.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "receipt_waits",
        sa.Column("payment_id", sa.UUID(), sa.ForeignKey("payments.id"), primary_key=True),
        sa.Column("tenant_id", sa.UUID(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("task_queue", sa.Text(), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("activity_id", sa.Text(), nullable=False),
        sa.Column("task_token", sa.LargeBinary(), nullable=False),
        sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_index("receipt_waits_chain", "receipt_waits", ["chain_id", "task_queue"])
    op.execute("ALTER TABLE receipt_waits ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE receipt_waits FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY paygent_owner ON receipt_waits TO CURRENT_USER USING (true) WITH CHECK (true)")
    op.execute(
        f"CREATE POLICY paygent_tenant ON receipt_waits USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT})"
    )
    op.execute("""
        CREATE FUNCTION paygent_receipt_wait_tenants(chain bigint, queue text) RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT DISTINCT tenant_id FROM receipt_waits WHERE chain_id = chain AND task_queue = queue
        $$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION paygent_receipt_wait_tenants(bigint, text)")
    op.drop_table("receipt_waits")
