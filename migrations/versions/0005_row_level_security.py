"""row-level security: every tenant-scoped table shows a transaction only its tenant's rows

Revision ID: 0005_rls
Revises: 0004_authority

The application connects as a role that is neither superuser nor owner (see paygent/db/roles.py), so these
policies hold for it; the role running migrations (the owner) keeps a policy that sees everything, for
migrations, `paygent audit verify` and operators. The tenant comes from `paygent.tenant_id`, set per
transaction by paygent/db/tenancy.py; unset, it matches nothing.

Two questions must be answered before a tenant is known, so two SECURITY DEFINER functions answer them:
`paygent_authenticate(key hash)` (which principal holds this API key) and `paygent_audit_last_hash()` (the
audit chain is one chain across tenants: an append links to the newest row, whoever's it is).
"""

from alembic import op

revision = "0005_rls"
down_revision = "0004_authority"
branch_labels = None
depends_on = None

TENANT = "NULLIF(current_setting('paygent.tenant_id', true), '')::uuid"

# table -> the rows of the current tenant
DIRECT = [
    "tenants",
    "users",
    "wallets",
    "payments",
    "ledger_entries",
    "approval_policies",
    "approvals",
    "webhooks",
    "threads",
    "messages",
    "agent_runs",
    "agent_memory",
    "agents",
    "wallet_grants",
]
VIA = {  # tables without a tenant column: visible when the row they belong to is visible
    "payment_transactions": "EXISTS (SELECT 1 FROM payments p WHERE p.id = payment_id)",
    "reservations": "EXISTS (SELECT 1 FROM wallets w WHERE w.id = wallet_id)",
    "spending_policies": "EXISTS (SELECT 1 FROM wallets w WHERE w.id = wallet_id)",
    "agent_llm_steps": "EXISTS (SELECT 1 FROM agent_runs r WHERE r.id = run_id)",
    "agent_events": "EXISTS (SELECT 1 FROM agent_runs r WHERE r.id = run_id)",
}


def _secure(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY paygent_owner ON {table} TO CURRENT_USER USING (true) WITH CHECK (true)")


def upgrade() -> None:
    for table in DIRECT:
        _secure(table)
        column = "id" if table == "tenants" else "tenant_id"
        op.execute(
            f"CREATE POLICY paygent_tenant ON {table} USING ({column} = {TENANT}) WITH CHECK ({column} = {TENANT})"
        )
    for table, visible in VIA.items():
        _secure(table)
        op.execute(f"CREATE POLICY paygent_tenant ON {table} USING ({visible}) WITH CHECK ({visible})")
    # the audit log: read your tenant's rows, append (system rows have no tenant); never change or delete
    _secure("audit_log")
    # rows without a tenant (e.g. a refused anonymous caller) are seen only by transactions without one
    op.execute(
        f"CREATE POLICY paygent_read ON audit_log FOR SELECT "
        f"USING (tenant_id = {TENANT} OR (tenant_id IS NULL AND {TENANT} IS NULL))"
    )
    op.execute(
        f"CREATE POLICY paygent_append ON audit_log FOR INSERT WITH CHECK (tenant_id = {TENANT} OR tenant_id IS NULL)"
    )
    # paid services with no tenant are offered to every tenant
    _secure("paid_services")
    op.execute(
        f"CREATE POLICY paygent_read ON paid_services FOR SELECT USING (tenant_id = {TENANT} OR tenant_id IS NULL)"
    )
    op.execute(
        f"CREATE POLICY paygent_write ON paid_services FOR ALL USING (tenant_id = {TENANT}) "
        f"WITH CHECK (tenant_id = {TENANT})"
    )
    op.execute("""
        CREATE FUNCTION paygent_authenticate(key_hash text)
        RETURNS TABLE (id uuid, tenant_id uuid, name text, roles text[], kind text, owner_id uuid, owner_name text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT u.id, u.tenant_id, u.name, u.roles, u.kind, u.owner_id, o.name
            FROM users u LEFT JOIN users o ON o.id = u.owner_id
            WHERE u.api_key_hash = key_hash AND NOT u.disabled
        $$""")
    op.execute("""
        CREATE FUNCTION paygent_audit_last_hash() RETURNS text
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1
        $$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION paygent_audit_last_hash()")
    op.execute("DROP FUNCTION paygent_authenticate(text)")
    for table in [*DIRECT, *VIA, "audit_log", "paid_services"]:
        op.execute(f"DROP POLICY IF EXISTS paygent_tenant ON {table}")
        op.execute(f"DROP POLICY IF EXISTS paygent_owner ON {table}")
        op.execute(f"DROP POLICY IF EXISTS paygent_read ON {table}")
        op.execute(f"DROP POLICY IF EXISTS paygent_append ON {table}")
        op.execute(f"DROP POLICY IF EXISTS paygent_write ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
