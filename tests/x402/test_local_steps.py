"""x402 payments started with local steps (PAYGENT_LOCAL_STEPS): paid once, and refusals still end cleanly."""

from __future__ import annotations

from tests.api.helpers import create, serve_api, token_balance, wait_final
from tests.x402.test_payments_api import x402_body


async def test_paid_fetch_with_local_steps_settles_once(app_settings, temporal_env, worker, dev, paid_service):
    async with serve_api(app_settings.model_copy(update={"local_steps": True}), temporal_env.client) as http:
        final = await wait_final(
            http, dev, (await create(http, dev, x402_body(dev, f"{paid_service.url}/weather"))).json()["id"]
        )
    assert final["status"] == "confirmed" and final["x402"]["outcome"] == "paid", final
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 10_000


async def test_over_the_cap_with_local_steps_is_refused(app_settings, temporal_env, worker, dev, paid_service):
    """The probe's refusal (non-retryable) arrives from a local activity unwrapped: the payment ends refused."""
    async with serve_api(app_settings.model_copy(update={"local_steps": True}), temporal_env.client) as http:
        final = await wait_final(
            http,
            dev,
            (await create(http, dev, x402_body(dev, f"{paid_service.url}/overcharge", max_amount="1"))).json()["id"],
        )
    assert final["status"] == "refused" and "X402Refused" in final["failure_reason"], final
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 0
