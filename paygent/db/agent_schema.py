"""Tables for agent runs: threads and their messages (the transcript), runs, LLM steps, events, services (memory: paygent/db/memory_schema.py).

The transcript lives here rather than in Temporal history: a workflow carries ids and short summaries, and an
activity rebuilds the LLM request from these rows. Idempotency is enforced by keys, not by hope:
- `messages.dedupe_key` (e.g. `<run>:step:3`, `<run>:tool:<call id>`): a retried activity writes nothing twice;
- `agent_llm_steps` (run_id, step): a finished LLM step is stored and returned again on retry, never re-asked;
- `agent_events` (run_id, seq): emitting an event twice is a no-op.
Migration: `migrations/versions/0003_agents.py`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from paygent.db.schema import Amount, metadata


def _ts(name: str = "created_at", nullable: bool = False) -> sa.Column:
    default = None if nullable else sa.func.now()
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=default)


threads = sa.Table(
    "threads",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    _ts(),
    _ts("updated_at"),
    _ts("archived_at", nullable=True),
    sa.Index("threads_owner_newest", "tenant_id", "user_id", "created_at", "id"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    # insertion order = conversation order, whichever clock the writers had
    sa.Column("position", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
    sa.Column("thread_id", UUID(as_uuid=True), sa.ForeignKey("threads.id", ondelete="CASCADE"), nullable=False),
    sa.Column("tenant_id", UUID(as_uuid=True), nullable=False),
    sa.Column("run_id", UUID(as_uuid=True), nullable=True),
    sa.Column("role", sa.Text, nullable=False),  # user | assistant | tool
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("tool_calls", JSONB, nullable=False, server_default="[]"),
    sa.Column("tool_call_id", sa.Text, nullable=True),
    sa.Column("tool_name", sa.Text, nullable=True),
    sa.Column("dedupe_key", sa.Text, nullable=True, unique=True),
    _ts(),
    sa.Index("messages_thread_position", "thread_id", "position"),
)

agent_runs = sa.Table(
    "agent_runs",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("thread_id", UUID(as_uuid=True), sa.ForeignKey("threads.id", ondelete="CASCADE"), nullable=False),
    sa.Column("message_id", UUID(as_uuid=True), nullable=False),
    sa.Column("wallet_id", UUID(as_uuid=True), nullable=True),
    # the agent the run acts as (its payments are the agent's); user_id is who started it
    sa.Column("agent_id", UUID(as_uuid=True), sa.ForeignKey("users.id"), nullable=True),
    sa.Column("workflow_id", sa.Text, nullable=False, unique=True),
    sa.Column("status", sa.Text, nullable=False),  # queued running awaiting_approval time_locked
    # completed failed cancelled
    sa.Column("max_steps", sa.Integer, nullable=False),
    sa.Column("steps", sa.Integer, nullable=False, server_default="0"),
    sa.Column("answer", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    _ts(),
    _ts("updated_at"),
    _ts("finished_at", nullable=True),
    sa.Index("agent_runs_thread", "thread_id", "created_at"),
)

agent_llm_steps = sa.Table(
    "agent_llm_steps",
    metadata,
    sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey("agent_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    sa.Column("message_id", UUID(as_uuid=True), nullable=False),
    sa.Column("response", JSONB, nullable=False),  # the LlmResponse, provider and fallback included
    _ts(),
)

agent_events = sa.Table(
    "agent_events",
    metadata,
    sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey("agent_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("data", JSONB, nullable=False, server_default="{}"),
    _ts("at"),
)

# Key-value memory per (tenant, user, namespace); expired rows are invisible and pruned on write.
# A small registry of paid (x402) services an agent may use; tenant_id NULL = offered to every tenant.
# Discovery (api/services_discovery.py, migration 0009) fills network, recipient and, for MCP, the tool.
paid_services = sa.Table(
    "paid_services",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("asset", sa.Text, nullable=False),  # the token's symbol (seeded rows) or contract address
    sa.Column("price_atomic", Amount, nullable=False),
    sa.Column("transport", sa.Text, nullable=False, server_default="http"),  # http | mcp
    sa.Column("tool", sa.Text, nullable=True),  # the MCP tool's name (transport mcp)
    sa.Column("network", sa.Text, nullable=True),  # CAIP-2, e.g. eip155:31337
    sa.Column("pay_to", sa.Text, nullable=True),
    sa.Column("metadata", JSONB, nullable=False, server_default="{}"),  # the discovery extension's info, if any
    _ts(),
    _ts("discovered_at", nullable=True),
    sa.UniqueConstraint("tenant_id", "name"),
)
