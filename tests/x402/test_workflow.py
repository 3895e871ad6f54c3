"""On the Temporal dev server: a lost answer makes Temporal retry `x402.send`, which re-sends the same payment."""

from __future__ import annotations

import uuid

from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker

from activities.x402 import X402Activities
from tests.x402.conftest import SHORT_TIMEOUT, payment_details
from tests.x402.test_client import PRICE, transfers_to
from tests.x402.x402_workflow import X402FetchWorkflow
from workflows import x402_types as x


async def _fetch(temporal_env, acts, dev, pid: str, url: str, policy) -> x.X402SendResult:
    queue = f"x402-test-{uuid.uuid4().hex[:8]}"
    probe = x.X402ProbeRequest(payment_id=pid, tenant_id=dev["tenant"]["id"], url=url, policy=policy)
    async with Worker(
        temporal_env.client, task_queue=queue, workflows=[X402FetchWorkflow], activities=acts.activities()
    ):
        return await temporal_env.client.execute_workflow(
            X402FetchWorkflow.run,
            args=[probe, dev["wallets"]["treasury"]["id"], SHORT_TIMEOUT],
            id=f"x402-test-{pid}",
            task_queue=queue,
            result_type=x.X402SendResult,
        )


async def test_retry_after_lost_answer_pays_once(
    temporal_env, db_engine, app_settings, dev, paid_service, new_x402_payment, policy, w3, token_address
):
    url = paid_service.url + "/flaky"
    pid = await new_x402_payment(url)
    result = await _fetch(temporal_env, X402Activities(db_engine, app_settings), dev, pid, url, policy)

    assert (result.outcome, result.settled, result.status_code) == (x.PAID, True, 200)
    assert result.replayed and result.attempts == 2  # first answer lost, second replayed by the server
    details = await payment_details(db_engine, pid)
    assert [a["status"] for a in details["attempts"]] == [None, 200]
    assert details["receipt"]["transaction"] == result.transaction
    assert await transfers_to(w3, token_address, paid_service.pay_to) == [PRICE]


async def test_overcharge_fails_the_workflow_without_signing(
    temporal_env, db_engine, app_settings, dev, paid_service, new_x402_payment, policy, w3, token_address
):
    url = paid_service.url + "/overcharge"
    pid = await new_x402_payment(url)
    try:
        await _fetch(temporal_env, X402Activities(db_engine, app_settings), dev, pid, url, policy)
        raise AssertionError("the overcharging server was paid")
    except WorkflowFailureError as exc:
        assert exc.cause.cause.type == "X402Refused"  # activity error -> application error, not retried
    details = await payment_details(db_engine, pid)
    assert "exceeds the per-request cap" in details["refusal"] and "signed" not in details
    assert await transfers_to(w3, token_address, paid_service.pay_to) == []
