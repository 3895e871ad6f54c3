"""hot path (issue 18): an audit append locks its chain and reads its head in one round trip; the pending
approvals list walks an index in its own order

Revision ID: 0019_hotpath2_hot_path
Revises: 0018_reserved_by_asset

`paygent_audit_lock_chain_head(lock_class, chain)` takes the chain's transaction-scoped advisory lock and then
returns the chain's newest hash. It is VOLATILE plpgsql, so (READ COMMITTED) the SELECT after the lock takes
a new snapshot that holds the previous lock holder's commit: the same guarantee as the two statements it
replaces (paygent/db/audit.py), one round trip instead of two. SECURITY DEFINER like `paygent_audit_chain_head`
(row-level security would hide a system row from a tenant).

`approvals_pending_newest (tenant_id, status, created_at DESC, id DESC)`: `GET /v1/approvals` pages newest first
within one tenant and status; with thousands pending, the planner read every pending row through
`approvals_tenant_status` and sorted them for each page.
"""

from alembic import op

revision = "0019_hotpath2_hot_path"
down_revision = "0018_reserved_by_asset"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION paygent_audit_lock_chain_head(lock_class integer, chain_name text) RETURNS text
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(lock_class, hashtext(chain_name));
            RETURN (SELECT hash FROM audit_log WHERE chain = chain_name ORDER BY id DESC LIMIT 1);
        END
        $$""")
    op.execute("CREATE INDEX approvals_pending_newest ON approvals (tenant_id, status, created_at DESC, id DESC)")


def downgrade() -> None:
    op.execute("DROP INDEX approvals_pending_newest")
    op.execute("DROP FUNCTION paygent_audit_lock_chain_head(integer, text)")
