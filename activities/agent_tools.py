"""`agent.run_tool`: the agent's tools that need no workflow of their own (balance, memory, services, health).

Arguments come from a model, so they are validated here like any outside input; a bad argument or a tool that
cannot answer becomes a tool result `{"error": ...}` for the model to read, never a failed run. Only
infrastructure trouble (Postgres or Redis down) raises, so Temporal retries the activity. `pay` and
`x402_fetch` are not here: they run as a child PaymentWorkflow (workflows/agent_pay.py), where spending
limits and approvals apply.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from paygent.agent_memory import GetArgs, Memory, SearchArgs, SetArgs
from paygent.chain.rpc import async_web3
from paygent.chain.token import balance_of
from paygent.db.accounts import get_wallet
from paygent.db.paid_services import list_services, service_view
from paygent.domain.money import format_amount
from paygent.memory.embedding import embedder_from_settings
from paygent.settings import Settings
from workflows import agent_types as at


class ToolRefused(Exception):
    """A tool call the model made that cannot be served; its message goes back to the model."""


def _outcome(data: dict[str, Any]) -> at.ToolOutcome:
    return at.ToolOutcome(ok="error" not in data, text=json.dumps(data, sort_keys=True))


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "arguments"
    return f"{field}: {first.get('msg', 'invalid')}"


class AgentToolActivities:
    def __init__(self, engine: AsyncEngine, redis: Redis, settings: Settings) -> None:
        self.engine, self.redis, self.settings = engine, redis, settings
        self.w3 = async_web3(settings.rpc_url)

    @activity.defn(name=at.ACT_RUN_TOOL)
    async def run_tool(self, inv: at.ToolInvocation) -> at.ToolOutcome:
        handlers = {
            "wallet_balance": self._balance,
            "memory_set": self._memory,
            "memory_get": self._memory,
            "memory_search": self._memory,
            "list_paid_services": self._services,
            "health": self._health,
        }
        handler = handlers.get(inv.call.name)
        try:
            if handler is None:
                raise ToolRefused(f"unknown tool {inv.call.name!r}")
            return _outcome(await handler(inv))
        except ValidationError as exc:
            return _outcome({"error": f"invalid arguments for {inv.call.name}: {validation_message(exc)}"})
        except ToolRefused as exc:
            return _outcome({"error": str(exc)})

    async def _balance(self, inv: at.ToolInvocation) -> dict[str, Any]:
        if not inv.wallet_id:
            raise ToolRefused("this run has no wallet")
        if not self.settings.token_address:
            raise ToolRefused("no token is configured on this server")
        async with self.engine.connect() as conn:
            wallet = await get_wallet(conn, uuid.UUID(inv.tenant_id), uuid.UUID(inv.wallet_id))
        if wallet is None:
            raise ToolRefused("the run's wallet no longer exists")
        atomic = await balance_of(self.w3, self.settings.token_address, wallet.address)
        others = {}  # every other registered asset (paygent/assets.py), in token units
        for asset in self.settings.asset_registry().on_chain(self.settings.chain_id):
            if asset.address.lower() != self.settings.token_address.lower():
                others[asset.symbol] = format_amount(
                    await balance_of(self.w3, asset.address, wallet.address), asset.decimals
                )
        return {
            "wallet": wallet.name,
            "address": wallet.address,
            "asset": self.settings.token_symbol,
            "balance": format_amount(atomic, self.settings.token_decimals),
            "balance_atomic": str(atomic),
            **({"other_assets": others} if others else {}),
        }

    async def _memory(self, inv: at.ToolInvocation) -> dict[str, Any]:
        memory = Memory(self.engine, self.redis, inv.tenant_id, inv.user_id, embedder_from_settings(self.settings))
        args = inv.call.arguments
        if inv.call.name == "memory_set":
            return await memory.set(SetArgs.model_validate(args))
        if inv.call.name == "memory_get":
            return await memory.get(GetArgs.model_validate(args))
        return await memory.search(SearchArgs.model_validate(args))

    async def _services(self, inv: at.ToolInvocation) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            rows = await list_services(conn, inv.tenant_id)
        return {"services": [service_view(r, self.settings.token_decimals, self.settings.token) for r in rows]}

    async def _health(self, inv: at.ToolInvocation) -> dict[str, Any]:
        async def postgres() -> str:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("select 1"))
            return "ok"

        async def redis() -> str:
            await self.redis.ping()
            return "ok"

        async def chain() -> str:
            return f"block {await self.w3.eth.block_number}"

        components: dict[str, str] = {}
        for name, check in (("postgres", postgres), ("redis", redis), ("chain", chain)):
            try:
                components[name] = await asyncio.wait_for(check(), timeout=3)
            except Exception as exc:  # a health check reports a failure, it does not raise it
                components[name] = f"down: {type(exc).__name__}"
        ok = all(not v.startswith("down") for v in components.values())
        return {"status": "ok" if ok else "degraded", "components": components}
