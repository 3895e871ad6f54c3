"""An agent run's vocabulary: its statuses and the events it emits, and the one event model, below every layer.

The workflow emits the events, `agent.emit_event` stores them (paygent/db/agent_events.py), and SSE, the
WebSocket and `paygent run` read them back: all spell a status or an event type through these enums.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class RunStatus(StrEnum):
    """`agent_runs.status`. While a payment of the run waits, the run's status follows the payment's."""

    queued = "queued"
    running = "running"
    awaiting_approval = "awaiting_approval"
    time_locked = "time_locked"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


RUN_TERMINAL = frozenset({RunStatus.completed, RunStatus.failed, RunStatus.cancelled})


class RunEventType(StrEnum):
    """An agent run's event types (its SSE/WebSocket feed), in the order a run usually emits them."""

    agent_started = "agent_started"
    agent_thinking = "agent_thinking"
    tool_executing = "tool_executing"
    tool_completed = "tool_completed"
    approval_requested = "approval_requested"  # who must approve, how many, until when, and the time-lock
    approval_progress = "approval_progress"  # one approval (or revocation) landed: who, n of m
    payment_time_locked = "payment_time_locked"  # approvals complete; the payment waits until `until`
    approval_decided = "approval_decided"
    swap_quoted = "swap_quoted"  # a `swap` tool call's quote (amounts, minimum, price impact), before it is governed
    swap_settled = "swap_settled"  # how that swap ended: amounts in and out, transaction, or why not
    agent_completed = "agent_completed"
    agent_failed = "agent_failed"


TERMINAL_EVENTS = frozenset({RunEventType.agent_completed, RunEventType.agent_failed})


class EmitEvent(BaseModel):
    """One event; (run_id, seq) makes emitting idempotent. The event type also moves the run's status."""

    run_id: str
    seq: int
    type: RunEventType
    data: dict[str, Any] = Field(default_factory=dict)


def stream_key(run_id: str) -> str:
    """The Redis Stream that fans a run's events out live; entry ids are `0-<seq>`."""
    return f"paygent:run:{run_id}"
