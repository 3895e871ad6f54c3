"""The refusals and the once-per-tool-call record that the paying tools and the swap tool share
(activities/agent_recording.py): each activity answers them for the model in the same words, and records nothing."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from temporalio.testing import ActivityEnvironment

from activities.agent_payments import AgentPaymentActivities
from activities.agent_swaps import AgentSwapActivities
from paygent.db.schema import payments
from paygent.db.tenancy import tenant_scope
from paygent.llm.types import ToolCall
from tests.api.helpers import new_recipient
from workflows import agent_types as at

SWAP_ARGS = {"from_asset": "USDC", "to_asset": "EURC", "amount": "1"}


async def _prepare(tool: str, db_engine, temporal_env, app_settings, p: at.PreparePayment):
    with tenant_scope(p.tenant_id):  # as the worker's interceptor scopes every activity (workers/tenant_context)
        if tool == "swap":
            return await ActivityEnvironment().run(AgentSwapActivities(db_engine, app_settings).prepare_swap, p)
        activities = AgentPaymentActivities(db_engine, temporal_env.client, app_settings)
        return await ActivityEnvironment().run(activities.prepare_payment, p)


def _call(dev, run_id: str, tool: str, arguments: dict, wallet_id: str | None) -> at.PreparePayment:
    alice = dev["users"]["alice"]
    return at.PreparePayment(
        run_id=run_id,
        tenant_id=dev["tenant"]["id"],
        user_id=alice["id"],
        user_name="alice",
        wallet_id=wallet_id,
        call=ToolCall(id="call-1", name=tool, arguments=arguments),
    )


async def _rows(db_engine, run_id: str) -> int:
    async with db_engine.connect() as conn:
        return await conn.scalar(
            sa.select(sa.func.count()).where(payments.c.id == uuid.UUID(at.agent_payment_id(run_id, "call-1")))
        )


@pytest.mark.parametrize("tool,verb", [("pay", "pay"), ("swap", "swap")])
async def test_both_tools_refuse_in_the_same_words_and_record_nothing(
    tool, verb, dev, db_engine, temporal_env, app_settings
):
    good = SWAP_ARGS if tool == "swap" else {"to": new_recipient(), "amount": "1", "asset": "USDC"}
    treasury = dev["wallets"]["treasury"]["id"]
    cases = [
        (good, None, f"this run has no wallet to {verb} from"),
        (good, str(uuid.uuid4()), "the run's wallet no longer exists"),
        ({**good, "amount": 1}, treasury, f"invalid arguments for {tool}: "),  # a JSON number: strict strings
    ]
    for arguments, wallet_id, refusal in cases:
        run_id = str(uuid.uuid4())
        prepared = await _prepare(
            tool, db_engine, temporal_env, app_settings, _call(dev, run_id, tool, arguments, wallet_id)
        )
        assert prepared.request is None and prepared.error is not None and prepared.error.startswith(refusal), (
            prepared.error
        )
        assert await _rows(db_engine, run_id) == 0


async def test_a_tool_call_is_recorded_once_and_another_request_under_its_id_is_refused(
    dev, db_engine, temporal_env, app_settings
):
    run_id, to = str(uuid.uuid4()), new_recipient()
    treasury = dev["wallets"]["treasury"]["id"]
    args = {"to": to, "amount": "1", "asset": "USDC"}
    first = await _prepare("pay", db_engine, temporal_env, app_settings, _call(dev, run_id, "pay", args, treasury))
    again = await _prepare("pay", db_engine, temporal_env, app_settings, _call(dev, run_id, "pay", args, treasury))
    assert first.error is None and first.request is not None and again.request is not None, (first.error, again.error)
    assert again.request.payment_id == first.request.payment_id == at.agent_payment_id(run_id, "call-1")
    other = await _prepare(
        "pay", db_engine, temporal_env, app_settings, _call(dev, run_id, "pay", {**args, "amount": "2"}, treasury)
    )
    assert other.request is None and other.error == "a different payment is already recorded for this tool call"
    assert await _rows(db_engine, run_id) == 1
    async with db_engine.connect() as conn:
        row = (
            await conn.execute(sa.select(payments).where(payments.c.id == uuid.UUID(first.request.payment_id)))
        ).one()
    assert (row.idempotency_key, int(row.amount_atomic)) == (f"agent-run:{run_id}:call-1", 1_000_000)
