"""paid services registry: what discovery read from a server's x402 offer (network, recipient, MCP tool)

Revision ID: 0009_paid_offers
Revises: 0008_reconcile

`paygent services discover URL` (and POST /v1/paid-services/discover) stores each offer a server makes: an
HTTP resource (transport "http") or a tool on an MCP server (transport "mcp", `tool` names it), with the
price, asset, network and recipient from its 402 answer, and the discovery extension's metadata when present.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009_paid_offers"
down_revision = "0008_reconcile"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("paid_services", sa.Column("transport", sa.Text(), server_default="http", nullable=False))
    op.add_column("paid_services", sa.Column("tool", sa.Text(), nullable=True))
    op.add_column("paid_services", sa.Column("network", sa.Text(), nullable=True))
    op.add_column("paid_services", sa.Column("pay_to", sa.Text(), nullable=True))
    op.add_column("paid_services", sa.Column("metadata", JSONB(), server_default="{}", nullable=False))
    op.add_column("paid_services", sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in ("discovered_at", "metadata", "pay_to", "network", "tool", "transport"):
        op.drop_column("paid_services", column)
