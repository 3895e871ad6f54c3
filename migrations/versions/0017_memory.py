"""memory that fleets can share: scoped JSON items with versions, partitions and TTLs; grants on shared scopes;
texts with their embeddings for semantic recall

Revision ID: 0017_memory
Revises: 0011_time_locked

`agent_memory` (per tenant, user and namespace; text values) becomes each principal's private scope
`[namespace]` in `memory_items` (values become JSON strings). Where the server has the pgvector extension
(Debian: postgresql-<version>-pgvector) it is created with an HNSW index over the embeddings; elsewhere recall
scans exactly (paygent/memory/recall.py says which one answered).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0017_memory"
down_revision = "0011_time_locked"
branch_labels = None
depends_on = None

TENANT = "NULLIF(current_setting('paygent.tenant_id', true), '')::uuid"
TABLES = ("memory_items", "memory_grants", "memory_texts")


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "memory_items",
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("owner_id", UUID(as_uuid=True), primary_key=True),  # a principal, or the nil UUID: shared
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", JSONB, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("partition", sa.Text, nullable=False, server_default=""),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("ttl_seconds", sa.Integer, nullable=True),
        sa.Column("refresh_ttl_on_read", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("written_by", sa.Text, nullable=False, server_default=""),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_index("memory_items_partition", "memory_items", ["tenant_id", "owner_id", "scope", "partition"])
    op.create_index(
        "memory_items_newest",
        "memory_items",
        ["tenant_id", "owner_id", "scope", sa.text("updated_at DESC"), sa.text("key DESC")],
    )
    op.create_index(
        "memory_items_expiry", "memory_items", ["expires_at"], postgresql_where=sa.text("expires_at IS NOT NULL")
    )
    op.execute("CREATE INDEX memory_items_value ON memory_items USING gin (value jsonb_path_ops)")
    op.create_table(
        "memory_grants",
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("principal_id", UUID(as_uuid=True), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("access", sa.Text, nullable=False),
        sa.Column("granted_by", sa.Text, nullable=False),
        _ts("granted_at"),
        sa.CheckConstraint("access IN ('read', 'write')", name="memory_grants_access"),
    )
    op.create_table(
        "memory_texts",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("owner_id", UUID(as_uuid=True), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("item_key", sa.Text, nullable=True),  # set for the text value of an item (PUT), else memorize
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("embedding", ARRAY(sa.REAL), nullable=False),
        _ts("created_at"),
    )
    op.create_index("memory_texts_scope", "memory_texts", ["tenant_id", "owner_id", "scope", "model"])
    op.create_index(
        "memory_texts_item",
        "memory_texts",
        ["tenant_id", "owner_id", "scope", "item_key"],
        unique=True,
        postgresql_where=sa.text("item_key IS NOT NULL"),
    )
    available = op.get_bind().scalar(sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"))
    if available:
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
        op.execute(
            "CREATE INDEX memory_texts_hnsw ON memory_texts USING hnsw ((embedding::vector(384)) vector_cosine_ops)"
        )
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY paygent_owner ON {table} TO CURRENT_USER USING (true) WITH CHECK (true)")
        op.execute(
            f"CREATE POLICY paygent_tenant ON {table} USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT})"
        )
    # what /metrics exports, summed over tenants (row-level security shows the application one tenant at a time)
    op.execute("""
        CREATE FUNCTION paygent_memory_state() RETURNS jsonb
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
        SELECT jsonb_build_object(
          'items', count(*) FILTER (WHERE expires_at IS NULL OR expires_at > now()),
          'bytes', coalesce(sum(size_bytes) FILTER (WHERE expires_at IS NULL OR expires_at > now()), 0),
          'expired', count(*) FILTER (WHERE expires_at <= now()),
          'texts', (SELECT count(*) FROM memory_texts))
        FROM memory_items
        $$""")
    op.execute("""
        INSERT INTO memory_items (tenant_id, owner_id, scope, key, value, version, size_bytes, expires_at,
                                  created_at, updated_at)
        SELECT tenant_id, user_id, namespace, key, to_jsonb(value), 1, octet_length(to_jsonb(value)::text),
               expires_at, updated_at, updated_at
        FROM agent_memory""")
    op.drop_table("agent_memory")


def downgrade() -> None:
    op.create_table(
        "agent_memory",
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("namespace", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        _ts("updated_at"),
    )
    op.execute("ALTER TABLE agent_memory ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE agent_memory FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY paygent_owner ON agent_memory TO CURRENT_USER USING (true) WITH CHECK (true)")
    op.execute(
        f"CREATE POLICY paygent_tenant ON agent_memory USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT})"
    )
    op.execute("""
        INSERT INTO agent_memory (tenant_id, user_id, namespace, key, value, expires_at, updated_at)
        SELECT tenant_id, owner_id, scope, key, value #>> '{}', expires_at, updated_at FROM memory_items
        WHERE owner_id <> '00000000-0000-0000-0000-000000000000' AND scope !~ '/' AND jsonb_typeof(value) = 'string'""")
    op.execute("DROP FUNCTION paygent_memory_state()")
    for table in reversed(TABLES):
        op.drop_table(table)
