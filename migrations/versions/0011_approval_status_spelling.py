"""approval status spelling: `timelocked` becomes `time_locked`, as payments and agent runs spell it

Revision ID: 0011_time_locked
Revises: 0010_audit_chains

Issue 10 (one vocabulary). Approvals that were time-locked when this runs are rewritten; ApprovalWorkflow writes
the new spelling from now on (histories recorded before keep upserting the old one: `workflow.patched`
"approval-status-time-locked-v1"), and readers accept both (paygent.domain.approval_state.ApprovalStatus).
The audit log is append-only and keeps what it recorded.
"""

from alembic import op

revision = "0011_time_locked"
down_revision = "0010_audit_chains"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE approvals SET status = 'time_locked' WHERE status = 'timelocked'")


def downgrade() -> None:
    op.execute("UPDATE approvals SET status = 'timelocked' WHERE status = 'time_locked'")
