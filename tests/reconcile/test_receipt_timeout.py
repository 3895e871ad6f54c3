"""A receipt wait that gives up leaves the payment `submitted`, never `failed`; the reconciler confirms it."""

from __future__ import annotations

import uuid

from temporalio.client import WorkflowExecutionStatus

from paygent.db.engine import get_engine
from tests.api.helpers import auth, create, funded_wallet, new_recipient, serve_api, token_balance
from tests.api.rpc_proxy import RpcProxy
from tests.api.test_worker_crash import _wait_row
from tests.reconcile.conftest import reconcile_until
from tests.reconcile.helpers import assert_replays, audit_actions, ledger_equals_chain, ledger_rows, reservation_status
from workers.main import build_worker
from workflows.payment_types import PaymentState


async def test_transaction_held_past_the_wait_ends_confirmed(app_settings, temporal_env, dev, db_engine, http):
    wallet = await funded_wallet(http, dev, app_settings, 20)
    async with RpcProxy(app_settings.rpc_url) as proxy:
        settings = app_settings.model_copy(
            update={"task_queue": f"receipt-{uuid.uuid4().hex[:6]}", "rpc_url": proxy.url, "receipt_wait_seconds": 3}
        )
        async with build_worker(temporal_env.client, settings, get_engine(settings.database_url)):
            async with serve_api(settings, temporal_env.client) as api:
                proxy.drop_sends()  # the node answers "accepted" and loses the transaction
                to = new_recipient()
                body = {"wallet_id": wallet["id"], "to": to, "amount": "2", "asset": "USDC", "memo": "held"}
                pid = (await create(api, dev, body)).json()["id"]
                handle = temporal_env.client.get_workflow_handle(f"payment-{pid}", result_type=PaymentState)
                state = await handle.result()
                # the wait gave up: the workflow ended, the payment did not fail
                assert state.status == "submitted" and state.tx_hash
                assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
                row = await _wait_row(db_engine, pid, lambda p: p["status"] == "submitted")
                assert "receipt_wait_gave_up_at" in row["details"]
                assert await reservation_status(db_engine, pid) == "reserved"
                assert proxy.dropped and await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 0

                proxy.stop_dropping()  # released: the reconciler re-sends the same signed bytes

                async def confirmed() -> bool:
                    return (await api.get(f"/v1/payments/{pid}", headers=auth(dev))).json()["status"] == "confirmed"

                await reconcile_until(temporal_env.client, settings.task_queue, confirmed, what="held payment")
                final = (await api.get(f"/v1/payments/{pid}", headers=auth(dev))).json()
                await reconcile_until(
                    temporal_env.client,
                    settings.task_queue,
                    lambda: ledger_equals_chain(api, dev, wallet["id"], final["block_number"]),
                    what="ledger == chain",
                )
    assert final["tx_hash"] == state.tx_hash  # the very transaction that was signed, not a new one
    statuses = [h["status"] for h in final["status_history"] if h["status"]]
    assert "failed" not in statuses and statuses[-2:] == ["submitted", "confirmed"], final["status_history"]
    actions = await audit_actions(db_engine, "payment", pid)
    assert "payment.receipt_wait_gave_up" in actions and "payment.reconciled" in actions
    assert "payment.failed" not in actions
    assert await reservation_status(db_engine, pid) == "committed"
    assert sorted(int(r["amount_atomic"]) for r in await ledger_rows(db_engine, pid)) == [-2_000_000, 2_000_000]
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 2_000_000
    await assert_replays(temporal_env.client, f"payment-{pid}")  # the patched path replays
