"""audit chains: the audit log is many hash chains (a tenant's subjects spread over 16), not one

Revision ID: 0010_audit_chains
Revises: 0009_paid_offers

Every append used to take one global lock and hold it through its transaction's commit, so every audited
write in the system (7 per payment) queued behind the others' fsyncs (issue 11: the first wait in
pg_stat_activity under load). Rows now carry `chain` ("<tenant or system>/<0-15>", chosen from the subject,
so one payment's rows stay in order on one chain); an append locks and links only its own chain. Rows from
before have `chain` NULL and stay one chain as they were; `paygent audit verify` checks every chain exactly.
"""

from alembic import op

revision = "0010_audit_chains"
down_revision = "0009_paid_offers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE audit_log ADD COLUMN chain text")
    op.execute("CREATE INDEX audit_log_chain_newest ON audit_log (chain, id DESC)")
    op.execute("""
        CREATE FUNCTION paygent_audit_chain_head(chain_name text) RETURNS text
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT hash FROM audit_log WHERE chain = chain_name ORDER BY id DESC LIMIT 1
        $$""")
    # a process still running the old code appends to the old chain only (its lock is the old global one)
    op.execute("""
        CREATE OR REPLACE FUNCTION paygent_audit_last_hash() RETURNS text
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT hash FROM audit_log WHERE chain IS NULL ORDER BY id DESC LIMIT 1
        $$""")


def downgrade() -> None:
    op.execute("""
        CREATE OR REPLACE FUNCTION paygent_audit_last_hash() RETURNS text
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1
        $$""")
    op.execute("DROP FUNCTION paygent_audit_chain_head(text)")
    op.execute("DROP INDEX audit_log_chain_newest")
    op.execute("ALTER TABLE audit_log DROP COLUMN chain")
