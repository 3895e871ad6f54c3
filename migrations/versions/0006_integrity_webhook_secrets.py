"""integrity: webhook signing secrets sealed at rest (existing plaintext rows are sealed, the plaintext dropped)

Revision ID: 0006_integrity
Revises: 0005_rls

Sealing needs the master key (PAYGENT_MASTER_KEY, or `.paygent/master.key` from `paygent stack up`) only when
rows exist; a fresh database upgrades without one. Depends on the head at the time of writing (0005_rls).
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0006_integrity"
down_revision = "0005_rls"
branch_labels = None
depends_on = None


def _master_key() -> bytes:
    from paygent.settings import Settings

    return Settings().master_key_bytes()


def upgrade() -> None:
    from paygent.crypto import seal_webhook_secret

    op.add_column("webhooks", sa.Column("secret_sealed", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, secret FROM webhooks")).all()
    if rows:
        key = _master_key()
        for row in rows:
            webhook_id = row.id if isinstance(row.id, uuid.UUID) else uuid.UUID(str(row.id))
            conn.execute(
                sa.text("UPDATE webhooks SET secret_sealed = :sealed WHERE id = :id"),
                {"sealed": seal_webhook_secret(key, webhook_id, row.secret), "id": row.id},
            )
    op.alter_column("webhooks", "secret_sealed", nullable=False)
    op.drop_column("webhooks", "secret")


def downgrade() -> None:
    from paygent.crypto import unseal_webhook_secret

    op.add_column("webhooks", sa.Column("secret", sa.Text(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, secret_sealed FROM webhooks")).all()
    if rows:
        key = _master_key()
        for row in rows:
            webhook_id = row.id if isinstance(row.id, uuid.UUID) else uuid.UUID(str(row.id))
            conn.execute(
                sa.text("UPDATE webhooks SET secret = :secret WHERE id = :id"),
                {"secret": unseal_webhook_secret(key, webhook_id, bytes(row.secret_sealed)), "id": row.id},
            )
    op.alter_column("webhooks", "secret", nullable=False)
    op.drop_column("webhooks", "secret_sealed")
