"""The worker SIGKILLed mid-run and restarted: the run completes, each LLM step reached the provider once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

import sqlalchemy as sa

from paygent.chain.rpc import async_web3
from paygent.db.schema import payments
from tests.agents.helpers import serve_api, sse_events, start_run, types, wait_run
from tests.api.helpers import new_recipient, transfers_to
from tests.fakes.llm_server import text, tool


def _worker_process(settings) -> subprocess.Popen:
    """`python -m workers.main` in its own process, configured only through the environment."""
    env = {
        **os.environ,
        "PAYGENT_DATABASE_URL": settings.database_url,
        "PAYGENT_REDIS_URL": settings.redis_url,
        "PAYGENT_TEMPORAL_ADDRESS": settings.temporal_address,
        "PAYGENT_TASK_QUEUE": settings.task_queue,
        "PAYGENT_RPC_URL": settings.rpc_url,
        "PAYGENT_TOKEN_ADDRESS": settings.token_address,
        "PAYGENT_MASTER_KEY": settings.master_key.get_secret_value(),
        "PAYGENT_LOG_LEVEL": "WARNING",
        "PAYGENT_WORKER_METRICS_ADDRESS": "",  # a stack beside the tests holds the default metrics port
        "PAYGENT_ANTHROPIC_API_KEY": settings.anthropic_api_key.get_secret_value(),
        "PAYGENT_ANTHROPIC_BASE_URL": settings.anthropic_base_url,
        "PAYGENT_ANTHROPIC_MODEL": settings.anthropic_model,
        "PAYGENT_OPENAI_API_KEY": settings.openai_api_key.get_secret_value(),
        "PAYGENT_OPENAI_BASE_URL": settings.openai_base_url,
        "PAYGENT_OPENAI_MODEL": settings.openai_model,
    }
    return subprocess.Popen([sys.executable, "-m", "workers.main"], env=env, start_new_session=True)


async def _submitted_payment(db_engine, run_id: str, timeout: float = 30):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        async with db_engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        sa.select(payments).where(payments.c.idempotency_key.startswith(f"agent-run:{run_id}:"))
                    )
                )
                .mappings()
                .first()
            )
        if row is not None and row["status"] == "submitted":
            return row
        await asyncio.sleep(0.05)
    raise AssertionError("the run's payment was never submitted")


async def test_sigkill_mid_run_then_restart_completes_without_repeating_an_llm_step(
    fake_llm, app_settings, temporal_env, dev, db_engine
):
    # only the subprocess workers below serve this task queue
    settings = fake_llm.settings().model_copy(
        update={
            **{
                k: getattr(app_settings, k)
                for k in (
                    "database_url",
                    "redis_url",
                    "rpc_url",
                    "token_address",
                    "temporal_address",
                    "master_key",
                    "confirmations",
                )
            },
            "task_queue": f"agent-crash-{uuid.uuid4().hex[:6]}",
        }
    )
    to = new_recipient()
    fake_llm.script(
        "anthropic", tool("pay", to=to, amount="7.25", asset="USDC", memo="invoice 9"), text("Paid the invoice.")
    )
    w3 = async_web3(settings.rpc_url)
    await w3.provider.make_request("evm_setAutomine", [False])  # hold the transfer: the run stays mid-tool
    first = _worker_process(settings)
    second = None
    try:
        async with serve_api(settings, temporal_env.client) as http:
            run = await start_run(http, dev, "pay invoice 9 (7.25 USDC)")
            row = await _submitted_payment(db_engine, run["id"])
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
            assert len(fake_llm.requests("anthropic")) == 1  # step 1 answered before the crash

            second = _worker_process(settings)
            await w3.provider.make_request("evm_setAutomine", [True])
            await w3.provider.make_request("evm_mine", [])
            final = await wait_run(http, dev, run["id"], timeout=90)
            events = await sse_events(http, dev, run["id"])
    finally:
        await w3.provider.make_request("evm_setAutomine", [True])
        for proc in (first, second):
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    assert final["status"] == "completed" and final["answer"] == "Paid the invoice."
    asked = fake_llm.requests("anthropic")
    assert len(asked) == 2 and fake_llm.requests("openai") == []  # each step exactly once
    assert [len(r.body["messages"]) for r in asked] == [1, 3]
    assert row["tx_hash"] in json.dumps(asked[1].body)  # step 2 read the payment's result
    assert await transfers_to(settings.rpc_url, settings.token_address, to) == 1
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert types(events).count("tool_executing") == 1 and types(events)[-1] == "agent_completed"
