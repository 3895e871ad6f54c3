"""Events that say who must act: a run whose payment (or swap) needs 2 of bob, carol and dave, then a time-lock,
streams `approval_requested` (approvers, how many, deadline, time-lock), an `approval_progress` as each approval
lands over HTTP, `payment_time_locked` with its end (the run's status follows: awaiting_approval, time_locked),
then the decision, the payment (swap) on chain and the answer. The payment or swap pushes each change to the run (a
Signal)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.api.helpers import auth, new_recipient, token_balance
from tests.workflows.replay_support import replay_all
from tests.ws.conftest import APPROVERS, TIMELOCK_SECONDS
from tests.ws.helpers import connect, events_of, finished, start, until


def of_type(messages: list[dict], kind: str) -> list[dict]:
    return [m for m in messages if m["type"] == kind]


async def approve(http, dev, who: str, payment_id: str) -> None:
    view = (await http.get(f"/v1/approvals/{payment_id}", headers=auth(dev, who))).json()
    r = await http.post(
        f"/v1/approvals/{payment_id}/approve", headers=auth(dev, who), json={"operation_hash": view["operation_hash"]}
    )
    assert r.status_code == 200, r.text


async def run_status(http, dev, run_id: str) -> str:
    return (await http.get(f"/v1/agent-runs/{run_id}", headers=auth(dev))).json()["status"]


@pytest.mark.parametrize("tool", ["pay", "swap"])
async def test_a_two_of_three_run_streams_who_must_act_then_the_time_lock_then_completion(
    api_url, http, dev, gated_wallet, app_settings, temporal_env, tool
):
    to = new_recipient()
    message = f"pay 150 USDC to {to} for the audit" if tool == "pay" else "swap 150 USDC to EURC"
    async with connect(api_url, dev["users"]["alice"]["api_key"]) as ws:
        asked_at = datetime.now(UTC)
        run_id = await start(ws, message, wallet_id=gated_wallet["id"])
        seen = await until(ws, lambda m: m["type"] == "approval_requested")
        requested = seen[-1]["data"]
        assert requested["approvers"] == APPROVERS and requested["approvals_needed"] == 2
        assert requested["approvals_had"] == 0 and requested["timelock_seconds"] == TIMELOCK_SECONDS
        deadline = datetime.fromisoformat(requested["approval_deadline"])
        assert asked_at + timedelta(minutes=59) < deadline < asked_at + timedelta(minutes=61)
        assert requested["tool_call_id"] == of_type(seen, "tool_executing")[0]["data"]["tool_call_id"]
        assert await run_status(http, dev, run_id) == "awaiting_approval"
        payment_id = requested["payment_id"]

        await approve(http, dev, "bob", payment_id)
        first = (await until(ws, lambda m: m["type"] == "approval_progress"))[-1]["data"]
        assert (first["approver"], first["approvals_had"], first["approvals_needed"]) == ("bob", 1, 2)
        await approve(http, dev, "carol", payment_id)
        second = (await until(ws, lambda m: m["type"] == "approval_progress"))[-1]["data"]
        assert (second["approver"], second["approvals_had"], second["approved_by"]) == ("carol", 2, ["bob", "carol"])
        locked = (await until(ws, lambda m: m["type"] == "payment_time_locked"))[-1]["data"]
        until_at = datetime.fromisoformat(locked["until"])
        assert datetime.now(UTC) < until_at <= datetime.now(UTC) + timedelta(seconds=TIMELOCK_SECONDS)
        assert locked["payment_id"] == payment_id and locked["approved_by"] == ["bob", "carol"]
        assert await run_status(http, dev, run_id) == "time_locked"

        rest = await until(ws, finished(run_id))
    events = events_of(seen + rest, run_id)
    decided = of_type(events, "approval_decided")[0]["data"]
    assert decided["decision"] == "approved" and datetime.now(UTC) >= until_at
    assert of_type(events, "tool_completed")[0]["data"]["ok"] is True
    assert events[-1]["type"] == "agent_completed" and "confirmed" in events[-1]["data"]["answer"]
    assert rest[-1]["status"] == "completed"
    if tool == "pay":
        assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 150 * 10**6
    else:
        settled = of_type(events, "swap_settled")[0]["data"]
        assert settled["status"] == "confirmed" and settled["payment_id"] == payment_id and settled["amount_out"]
    # and the pushed path replays: the run, its payment (or swap) and the approval, from their recorded histories
    histories = [
        await temporal_env.client.get_workflow_handle(wid).fetch_history()
        for wid in (f"agent-run-{run_id}", f"payment-{payment_id}", f"approval-{payment_id}")
    ]
    assert await replay_all(histories) == {}
