"""Tables for memory (migration 0017): scoped JSON items, grants on shared scopes, texts with embeddings.

An item belongs to (tenant, owner, scope, key). The owner is the principal (person or agent) for a private scope,
or the nil UUID for a scope shared by the tenant. Its `version` grows by one with every write, so
compare-and-set needs no lock. `partition` is an indexed column inside the scope (docs/ARCHITECTURE.md,
"Memory", says why not declarative partitioning).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from paygent.db.schema import metadata

SHARED_OWNER = uuid.UUID(int=0)


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


memory_items = sa.Table(
    "memory_items",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("owner_id", UUID(as_uuid=True), primary_key=True),
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

memory_grants = sa.Table(
    "memory_grants",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("principal_id", UUID(as_uuid=True), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("access", sa.Text, nullable=False),
    sa.Column("granted_by", sa.Text, nullable=False),
    _ts("granted_at"),
)

memory_texts = sa.Table(
    "memory_texts",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("owner_id", UUID(as_uuid=True), nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("item_key", sa.Text, nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("embedding", ARRAY(sa.REAL), nullable=False),
    _ts("created_at"),
)
