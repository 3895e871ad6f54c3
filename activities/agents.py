"""Every activity an agent run needs, built once per worker (`workers/main.py` registers the list).

The Redis client is created here rather than per call: it backs the live event feed and the memory cache, and
its connection pool is bound to the worker's event loop on first use.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from activities.agent_payments import AgentPaymentActivities
from activities.agent_steps import AgentStepActivities
from activities.agent_swaps import AgentSwapActivities
from activities.agent_tools import AgentToolActivities
from activities.llm import LlmActivities
from paygent.settings import Settings


def agent_activities(client: Client, settings: Settings, engine: AsyncEngine) -> list[Any]:
    """The agent run's activities plus the standalone `llm_complete` (same settings, same provider routing)."""
    redis = Redis.from_url(settings.redis_url)
    steps = AgentStepActivities(engine, redis, settings)
    tools = AgentToolActivities(engine, redis, settings)
    payments = AgentPaymentActivities(engine, client, settings)
    swaps = AgentSwapActivities(engine, settings)
    return [
        steps.llm_step,
        steps.emit_event,
        steps.record_tool_result,
        tools.run_tool,
        payments.prepare_payment,
        payments.payment_status,
        payments.cancel_payment,
        swaps.prepare_swap,
        LlmActivities(settings).llm_complete,
    ]
