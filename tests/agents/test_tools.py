"""The non-paying tools, called as the worker calls them (`agent.run_tool` in an activity environment)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from redis.asyncio import Redis
from temporalio.testing import ActivityEnvironment

from activities.agent_tools import AgentToolActivities
from paygent.db.agent_schema import paid_services
from paygent.domain.money import format_amount
from paygent.llm.types import ToolCall
from workflows.agent_types import ToolInvocation


@pytest.fixture
def call(app_settings, db_engine, redis_url, dev):
    tools = AgentToolActivities(db_engine, Redis.from_url(redis_url), app_settings)
    env = ActivityEnvironment()

    async def run(name: str, user: str = "alice", tenant: str | None = None, **arguments) -> dict:
        inv = ToolInvocation(
            run_id=str(uuid.uuid4()),
            tenant_id=tenant or dev["tenant"]["id"],
            user_id=dev["users"][user]["id"],
            wallet_id=dev["wallets"]["treasury"]["id"],
            call=ToolCall(id=f"call-{uuid.uuid4().hex[:6]}", name=name, arguments=arguments),
        )
        outcome = await env.run(tools.run_tool, inv)
        data = json.loads(outcome.text)
        assert outcome.ok == ("error" not in data)
        return data

    return run


async def test_memory_is_namespaced_per_user_with_ttl_and_prefix_search(call):
    ns = f"ns-{uuid.uuid4().hex[:6]}"
    await call("memory_set", namespace=ns, key="vendor/acme", value="net 30")
    await call("memory_set", namespace=ns, key="vendor/a_me", value="literal underscore")
    await call("memory_set", namespace=ns, key="short", value="gone soon", ttl_seconds=1)
    assert (await call("memory_get", namespace=ns, key="vendor/acme"))["value"] == "net 30"
    assert (await call("memory_get", namespace=ns, key="vendor/acme"))["cached"] is True  # second read: Redis
    await call("memory_set", namespace=ns, key="vendor/acme", value="net 45")  # a write drops the cached copy
    assert (await call("memory_get", namespace=ns, key="vendor/acme"))["value"] == "net 45"

    found = await call("memory_search", namespace=ns, prefix="vendor/a_")
    assert [i["key"] for i in found["items"]] == ["vendor/a_me"]  # `_` is a character, not a wildcard
    assert (await call("memory_search", namespace=ns, prefix="vendor/"))["count"] == 2
    assert (await call("memory_get", namespace=ns, key="vendor/acme", user="bob"))["value"] is None
    assert (await call("memory_search", namespace=ns, prefix="", user="bob"))["count"] == 0

    assert (await call("memory_get", namespace=ns, key="short"))["value"] == "gone soon"
    await asyncio.sleep(1.2)
    assert (await call("memory_get", namespace=ns, key="short"))["value"] is None
    assert "short" not in [i["key"] for i in (await call("memory_search", namespace=ns))["items"]]


async def test_bad_tool_arguments_come_back_as_errors_naming_the_argument(call):
    assert "ttl_seconds" in (await call("memory_set", key="k", value="v", ttl_seconds=0))["error"]
    assert "key" in (await call("memory_get", key="no spaces allowed"))["error"]
    assert "unknown tool" in (await call("launch_rockets"))["error"]


async def test_paid_services_registry_and_health_and_balance(call, db_engine, dev):
    async with db_engine.begin() as conn:
        await conn.execute(
            paid_services.insert().values(
                id=uuid.uuid4(),
                tenant_id=uuid.UUID(dev["tenant"]["id"]),
                name=f"weather-{uuid.uuid4().hex[:4]}",
                url="http://127.0.0.1:8402/weather",
                description="Weather by the request",
                asset="USDC",
                price_atomic=10_000,
            )
        )
    services = (await call("list_paid_services"))["services"]
    assert any(s["url"].endswith("/weather") and s["price"] == "0.01" for s in services)
    health = await call("health")
    assert health["status"] == "ok" and set(health["components"]) == {"postgres", "redis", "chain"}
    balance = await call("wallet_balance")
    assert balance["asset"] == "USDC" and balance["address"] == dev["wallets"]["treasury"]["address"]
    assert int(balance["balance_atomic"]) > 0
    assert balance["balance"] == format_amount(int(balance["balance_atomic"]), 6)  # a decimal string, no float
