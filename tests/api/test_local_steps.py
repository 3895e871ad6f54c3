"""Payments started with local steps (PAYGENT_LOCAL_STEPS): the same outcomes, with one regular activity.

Each short step (reserve with the policy read; sign, send and record `submitted`; settle) runs as a local activity
inside the workflow task; only the receipt wait is a regular activity: 3 server round trips in all (1 activity,
2 workflow tasks). Refusals still end the payment cleanly.
"""

from __future__ import annotations

from tests.api.helpers import create, new_recipient, payment_body, serve_api, token_balance, wait_final


async def test_a_payment_with_local_steps_confirms_with_one_regular_activity(app_settings, temporal_env, worker, dev):
    settings = app_settings.model_copy(update={"local_steps": True})
    to = new_recipient()
    async with serve_api(settings, temporal_env.client) as http:
        accepted = (await create(http, dev, payment_body(dev, to, "3.25"))).json()
        final = await wait_final(http, dev, accepted["id"])
    assert final["status"] == "confirmed", final
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 3_250_000
    history = await temporal_env.client.get_workflow_handle(accepted["workflow_id"]).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    local = [
        e
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    assert scheduled == ["payments.await_receipt"] and len(local) == 3
    round_trips = [
        e
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        or e.HasField("workflow_task_scheduled_event_attributes")
    ]
    assert len(round_trips) <= 6, len(round_trips)
