"""agent runs: threads, messages, runs, llm steps, events, memory, paid services

Revision ID: 0003
Revises: 0001

Hand-written to match paygent/db/agent_schema.py. It branches from 0001 on purpose: the approvals branch
(0002) applies independently, and `paygent migrate` upgrades all heads.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts(name: str = "created_at", nullable: bool = False) -> sa.Column:
    default = None if nullable else sa.text("now()")
    return sa.Column(name, sa.DateTime(timezone=True), server_default=default, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "threads",
        sa.Column("id", sa.UUID(), primary_key=True),
        sa.Column("tenant_id", sa.UUID(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("user_id", sa.UUID(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        _ts(),
        _ts("updated_at"),
        _ts("archived_at", nullable=True),
    )
    op.create_index("threads_owner_newest", "threads", ["tenant_id", "user_id", "created_at", "id"])
    op.create_table(
        "messages",
        sa.Column("id", sa.UUID(), primary_key=True),
        sa.Column("position", sa.BigInteger(), sa.Identity(always=False), nullable=False, unique=True),
        sa.Column("thread_id", sa.UUID(), sa.ForeignKey("threads.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("tool_calls", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("tool_call_id", sa.Text(), nullable=True),
        sa.Column("tool_name", sa.Text(), nullable=True),
        sa.Column("dedupe_key", sa.Text(), nullable=True, unique=True),
        _ts(),
    )
    op.create_index("messages_thread_position", "messages", ["thread_id", "position"])
    op.create_table(
        "agent_runs",
        sa.Column("id", sa.UUID(), primary_key=True),
        sa.Column("tenant_id", sa.UUID(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("user_id", sa.UUID(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("thread_id", sa.UUID(), sa.ForeignKey("threads.id", ondelete="CASCADE"), nullable=False),
        sa.Column("message_id", sa.UUID(), nullable=False),
        sa.Column("wallet_id", sa.UUID(), nullable=True),
        sa.Column("workflow_id", sa.Text(), nullable=False, unique=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("max_steps", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), server_default="0", nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _ts(),
        _ts("updated_at"),
        _ts("finished_at", nullable=True),
    )
    op.create_index("agent_runs_thread", "agent_runs", ["thread_id", "created_at"])
    op.create_table(
        "agent_llm_steps",
        sa.Column("run_id", sa.UUID(), sa.ForeignKey("agent_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("step", sa.Integer(), primary_key=True),
        sa.Column("message_id", sa.UUID(), nullable=False),
        sa.Column("response", postgresql.JSONB(), nullable=False),
        _ts(),
    )
    op.create_table(
        "agent_events",
        sa.Column("run_id", sa.UUID(), sa.ForeignKey("agent_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("data", postgresql.JSONB(), server_default="{}", nullable=False),
        _ts("at"),
    )
    op.create_table(
        "agent_memory",
        sa.Column("tenant_id", sa.UUID(), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("user_id", sa.UUID(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("namespace", sa.Text(), primary_key=True),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        _ts("updated_at"),
    )
    op.create_table(
        "paid_services",
        sa.Column("id", sa.UUID(), primary_key=True),
        sa.Column("tenant_id", sa.UUID(), sa.ForeignKey("tenants.id"), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("asset", sa.Text(), nullable=False),
        sa.Column("price_atomic", sa.Numeric(78, 0), nullable=False),
        _ts(),
        sa.UniqueConstraint("tenant_id", "name"),
    )


def downgrade() -> None:
    for table in (
        "paid_services",
        "agent_memory",
        "agent_events",
        "agent_llm_steps",
        "agent_runs",
        "messages",
        "threads",
    ):
        op.drop_table(table)
