"""A minimal workflow paying for one URL with the x402 activities, as the payment workflow will.

It imports `workflows.x402_types` inside the sandbox on purpose: that module promises to be safe there.
`x402.send` is retried by Temporal (fast, for the test); `x402.sign` is never retried into a new signature.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows import x402_types as x

FAST_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=1.0,
    maximum_attempts=5,
    non_retryable_error_types=["X402Refused", "X402Rejected", "X402State"],
)


@workflow.defn
class X402FetchWorkflow:
    @workflow.run
    async def run(self, probe: x.X402ProbeRequest, wallet_id: str, send_timeout_seconds: float) -> x.X402SendResult:
        opts = {"start_to_close_timeout": timedelta(seconds=20), "retry_policy": FAST_RETRY}
        await workflow.execute_activity(x.ACT_X402_PROBE, probe, result_type=x.X402ProbeResult, **opts)
        await workflow.execute_activity(
            x.ACT_X402_SIGN,
            x.X402SignRequest(
                payment_id=probe.payment_id, tenant_id=probe.tenant_id, wallet_id=wallet_id, policy=probe.policy
            ),
            result_type=x.X402SignResult,
            **opts,
        )
        return await workflow.execute_activity(
            x.ACT_X402_SEND,
            x.X402SendRequest(
                payment_id=probe.payment_id, tenant_id=probe.tenant_id, timeout_seconds=send_timeout_seconds
            ),
            result_type=x.X402SendResult,
            **opts,
        )
