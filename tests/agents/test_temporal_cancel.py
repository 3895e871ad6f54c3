"""Agent runs cancelled or terminated with Temporal's own tools: a cancel ends the run `cancelled` (its payment
in flight cancelled, the budget freed) and is audited with channel `temporal`; a terminate is ended by the
reconcile tick's sweep; a cancel request against the closed workflow answers 409, never 500."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from temporalio.client import WorkflowFailureError

from paygent.db.agent_schema import agent_events
from tests.agents.helpers import start_run, wait_run
from tests.api.helpers import auth, new_recipient
from tests.api.temporal_ops import audit, held_figure_matches_rows, reservation, row
from tests.api.test_temporal_terminate import _terminate, _tick
from tests.approvals.helpers import until


async def _waiting_run(http, dev) -> dict:
    """A run whose payment waits for an approver (the dev policy wants one above 100 USDC)."""
    run = await start_run(http, dev, f"pay 500 USDC to {new_recipient()}", wallet_id=dev["wallets"]["treasury"]["id"])
    await until(lambda: _status(http, dev, run["id"]), lambda s: s == "awaiting_approval")
    return run


async def _status(http, dev, run_id: str) -> str:
    return (await http.get(f"/v1/agent-runs/{run_id}", headers=auth(dev))).json()["status"]


async def _events(db_engine, run_id: str) -> list[tuple[str, dict]]:
    async with db_engine.connect() as conn:
        rows = await conn.execute(
            sa.select(agent_events.c.type, agent_events.c.data)
            .where(agent_events.c.run_id == uuid.UUID(run_id))
            .order_by(agent_events.c.seq)
        )
        return [(r.type, r.data) for r in rows]


async def test_temporal_cancel_of_a_run_waiting_for_approval(http, dev, db_engine, temporal_env):
    run = await _waiting_run(http, dev)
    handle = temporal_env.client.get_workflow_handle(run["workflow_id"])
    await handle.cancel(reason="operator: stop")
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    final = await wait_run(http, dev, run["id"])
    assert final["status"] == "cancelled" and "operator: stop" in final["error"]
    [(actor, channel, data)] = await audit(db_engine, run["id"], "agent_run.cancelled")
    assert (actor, channel) == ("temporal", "temporal") and "operator: stop" in data["reason"]
    last_type, last = (await _events(db_engine, run["id"]))[-1]
    assert last_type == "agent_failed" and last["payment_status"] == "cancelled"
    assert (await row(db_engine, last["payment_id"]))["status"] == "cancelled"
    assert await reservation(db_engine, last["payment_id"]) == "released"
    again = await http.post(f"/v1/agent-runs/{run['id']}/cancel", headers=auth(dev))
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


async def test_a_cancel_through_the_api_is_not_audited_as_temporal(http, dev, db_engine, temporal_env):
    run = await _waiting_run(http, dev)
    assert (await http.post(f"/v1/agent-runs/{run['id']}/cancel", headers=auth(dev))).status_code == 202
    assert (await wait_run(http, dev, run["id"]))["status"] == "cancelled"
    assert [c for _, c, _ in await audit(db_engine, run["id"], "agent_run.cancel_requested")] == ["api"]
    assert await audit(db_engine, run["id"], "agent_run.cancelled") == []


async def test_terminated_run_answers_409_then_the_sweep_ends_it(http, dev, app_settings, db_engine, temporal_env):
    run = await _waiting_run(http, dev)
    await _terminate(temporal_env.client, run["workflow_id"])
    refused = await http.post(f"/v1/agent-runs/{run['id']}/cancel", headers=auth(dev))
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "workflow_closed" and "awaiting_approval" in refused.text
    assert await audit(db_engine, run["id"], "agent_run.cancel_requested") == []  # a refusal writes nothing

    await _tick(app_settings, temporal_env.client)
    final = await wait_run(http, dev, run["id"])
    assert final["status"] == "cancelled" and "its workflow was terminated: operator: stuck" in final["error"]
    last_type, last = (await _events(db_engine, run["id"]))[-1]
    assert last_type == "agent_failed" and last["status"] == "cancelled" and last["swept"] is True
    [(_, channel, _)] = await audit(db_engine, run["id"], "agent_run.cancelled")
    assert channel == "temporal"
    await held_figure_matches_rows(http, db_engine)
