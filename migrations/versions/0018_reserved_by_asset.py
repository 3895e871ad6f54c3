"""operational state for /metrics, second edition: amounts reserved, by asset

Revision ID: 0018_reserved_by_asset
Revises: 0015_x402_sessions

`paygent_operational_state()` (0007) gains one key, still an aggregate over every tenant and never a row or an
id: `reserved`, per asset the sum and count of reservations held (the sum as text, so no JSON reader rounds
it). api/metrics.py reads it at each scrape (`paygent_reserved_amount{asset}`).
"""

from alembic import op

revision = "0018_reserved_by_asset"
down_revision = "0015_x402_sessions"
branch_labels = None
depends_on = None

PAYMENTS = """
          'payments', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'kind', kind, 'status', status, 'count', n, 'oldest_age_seconds', age)), '[]'::jsonb)
              FROM (SELECT kind, status, count(*) AS n,
                           extract(epoch FROM now() - min(updated_at))::float8 AS age
                    FROM payments GROUP BY kind, status) p),
          'approvals_pending', (SELECT count(*) FROM approvals WHERE status = 'pending'),
          'decisions', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'action', action, 'channel', channel, 'count', n)), '[]'::jsonb)
              FROM (SELECT action, channel, count(*) AS n FROM audit_log
                    WHERE subject_type = 'approval' AND action IN ('approval.approve', 'approval.reject',
                          'approval.revoke', 'approval.cancel', 'approval.edit', 'approval.delegate')
                    GROUP BY action, channel) d),
          'reservations_held', (SELECT count(*) FROM reservations WHERE status = 'reserved'),
          'oldest_reservation_age_seconds', (SELECT coalesce(
                extract(epoch FROM now() - min(created_at))::float8, 0) FROM reservations
                WHERE status = 'reserved')"""

NEW = """,
          'reserved', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'asset', asset, 'amount_atomic', total::text, 'count', n)), '[]'::jsonb)
              FROM (SELECT asset, sum(amount_atomic) AS total, count(*) AS n FROM reservations
                    WHERE status = 'reserved' GROUP BY asset) r)"""


def _function(body: str) -> str:
    return f"""
        CREATE OR REPLACE FUNCTION paygent_operational_state() RETURNS jsonb
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
        SELECT jsonb_build_object({body})
        $$"""


def upgrade() -> None:
    op.execute(_function(PAYMENTS + NEW))


def downgrade() -> None:
    op.execute(_function(PAYMENTS))
