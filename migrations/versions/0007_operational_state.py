"""operational state for /metrics: one aggregate over all tenants, readable by the application role

Revision ID: 0007_ops_state
Revises: 0006_integrity

Row-level security (0005) shows the application one tenant at a time, and hides the list of tenants. The
API's /metrics needs totals over every tenant (payments by kind and status, approvals pending, decisions by
channel, reservations held), so, like `paygent_authenticate`, one SECURITY DEFINER function answers it: it
returns counts and ages only, never a row, an id or an amount. api/metrics.py reads it at each scrape.
"""

from alembic import op

revision = "0007_ops_state"
down_revision = "0006_integrity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION paygent_operational_state() RETURNS jsonb
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
        SELECT jsonb_build_object(
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
                WHERE status = 'reserved'))
        $$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION paygent_operational_state()")
