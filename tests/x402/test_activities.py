"""The x402 activities on a real payment row, the real paid service, anvil and Postgres.

Activities run through Temporal's ActivityEnvironment (a real activity context, no server); the
workflow test beside this file runs them on the Temporal dev server with real retries.
"""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.x402 import X402Activities
from paygent.chain.token import balance_of
from paygent.db.accounts import create_wallet, load_signer
from paygent.db.schema import audit_log
from tests.x402.conftest import SHORT_TIMEOUT, payment_details
from tests.x402.test_client import PRICE, transfers_to
from workflows import x402_types as x


@pytest.fixture
def acts(db_engine, app_settings) -> X402Activities:
    return X402Activities(db_engine, app_settings)


async def _run(fn, arg):
    return await ActivityEnvironment().run(fn, arg)


def _requests(dev, pid: str, url: str, policy, wallet_id: str | None = None):
    tenant = dev["tenant"]["id"]
    return (
        x.X402ProbeRequest(payment_id=pid, tenant_id=tenant, url=url, policy=policy),
        x.X402SignRequest(
            payment_id=pid, tenant_id=tenant, policy=policy, wallet_id=wallet_id or dev["wallets"]["treasury"]["id"]
        ),
        x.X402SendRequest(payment_id=pid, tenant_id=tenant),
    )


async def _audit_actions(db_engine, pid: str) -> list[str]:
    async with db_engine.connect() as conn:
        return list(
            (
                await conn.scalars(
                    sa.select(audit_log.c.action).where(audit_log.c.subject_id == pid).order_by(audit_log.c.id)
                )
            ).all()
        )


async def test_paid_request_is_signed_once_and_recorded(
    acts, dev, paid_service, new_x402_payment, policy, w3, token_address, db_engine, app_settings
):
    url = paid_service.url + "/weather"
    pid = await new_x402_payment(url)
    probe, sign, send = _requests(dev, pid, url, policy)
    treasury = dev["wallets"]["treasury"]["address"]
    before = await balance_of(w3, token_address, treasury)

    probed = await _run(acts.probe, probe)
    assert (probed.payment_required, probed.amount_atomic, probed.pay_to) == (True, PRICE, paid_service.pay_to)
    first = await _run(acts.sign, sign)
    again = await _run(acts.sign, sign)  # a retried sign returns the stored authorization
    assert not first.reused and again.reused
    assert (again.authorization_nonce, again.payment_identifier) == (
        first.authorization_nonce,
        f"paygent_{uuid.UUID(pid).hex}",
    )
    result = await _run(acts.send, send)
    assert (result.outcome, result.settled, result.status_code, result.attempts) == (x.PAID, True, 200, 1)
    assert await balance_of(w3, token_address, paid_service.pay_to) == PRICE
    assert await balance_of(w3, token_address, treasury) == before - PRICE

    details = await payment_details(db_engine, pid)
    assert details["receipt"]["success"] and details["receipt"]["transaction"] == result.transaction
    assert details["chain_confirmed"] and details["response"]["status"] == 200
    assert "forecast" in details["response"]["body_excerpt"]
    assert await _run(acts.send, send) == result  # recorded: returned again without re-sending
    assert await transfers_to(w3, token_address, paid_service.pay_to) == [PRICE]
    assert await _audit_actions(db_engine, pid) == ["x402.signed", "x402.sent"]
    async with db_engine.connect() as conn:  # the stored authorization is not the key
        key = (
            (await load_signer(conn, uuid.UUID(dev["wallets"]["treasury"]["id"]), app_settings.master_key_bytes()))
            .key.hex()
            .removeprefix("0x")
        )
    assert key not in json.dumps(details).lower()


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/overcharge", "exceeds the per-request cap"),
        ("/wrong-network", "network 'eip155:84532' is not allowed"),
        ("/unknown-asset", "is not an allowed asset"),
    ],
)
async def test_refused_requirements_sign_nothing(
    acts, dev, paid_service, new_x402_payment, policy, w3, token_address, db_engine, path, expected
):
    url = paid_service.url + path
    pid = await new_x402_payment(url)
    probe, sign, _ = _requests(dev, pid, url, policy)
    treasury = dev["wallets"]["treasury"]["address"]
    before = await balance_of(w3, token_address, treasury)
    for fn, arg in ((acts.probe, probe), (acts.sign, sign)):  # sign re-checks what probe recorded
        with pytest.raises(ApplicationError) as err:
            await _run(fn, arg)
        assert err.value.type == "X402Refused" and err.value.non_retryable and expected in str(err.value)
    details = await payment_details(db_engine, pid)
    assert expected in details["refusal"] and "signed" not in details
    assert await balance_of(w3, token_address, treasury) == before
    assert await balance_of(w3, token_address, paid_service.pay_to) == 0
    assert await _audit_actions(db_engine, pid) == ["x402.refused", "x402.refused"]


async def test_fail_after_pay_records_the_settlement_and_the_500(
    acts, dev, paid_service, new_x402_payment, policy, w3, token_address, db_engine
):
    url = paid_service.url + "/fail-after-pay"
    pid = await new_x402_payment(url)
    probe, sign, send = _requests(dev, pid, url, policy)
    await _run(acts.probe, probe)
    await _run(acts.sign, sign)
    result = await _run(acts.send, send)
    assert (result.outcome, result.settled, result.status_code) == (x.PAID_SERVER_ERROR, True, 500)
    assert result.transaction and "failed after taking payment" in result.body_excerpt
    details = await payment_details(db_engine, pid)
    assert details["receipt"]["success"] and details["response"]["status"] == 500 and "refusal" not in details
    assert (await _run(acts.send, send)).attempts == 1  # settled: never sent again
    assert await transfers_to(w3, token_address, paid_service.pay_to) == [PRICE]


async def test_unfunded_wallet_gets_the_facilitators_refusal(
    acts, dev, paid_service, new_x402_payment, policy, db_engine, app_settings, w3, token_address
):
    async with db_engine.begin() as conn:
        wallet_id, _ = await create_wallet(
            conn, uuid.UUID(dev["tenant"]["id"]), f"empty-{uuid.uuid4().hex[:8]}", app_settings.master_key_bytes()
        )
    url = paid_service.url + "/weather"
    pid = await new_x402_payment(url, wallet_id=str(wallet_id))
    probe, sign, send = _requests(dev, pid, url, policy, wallet_id=str(wallet_id))
    await _run(acts.probe, probe)
    await _run(acts.sign, sign)
    with pytest.raises(ApplicationError) as err:
        await _run(acts.send, send)
    assert err.value.type == "X402Refused" and err.value.non_retryable
    assert "invalid_exact_evm_insufficient_balance" in str(err.value)
    details = await payment_details(db_engine, pid)
    assert "invalid_exact_evm_insufficient_balance" in details["refusal"] and "outcome" not in details
    assert details["response"]["status"] == 402
    assert await balance_of(w3, token_address, paid_service.pay_to) == 0


async def test_lost_answer_without_replay_is_reconciled_on_chain(
    acts, dev, paid_service, new_x402_payment, policy, w3, token_address, db_engine
):
    url = paid_service.url + "/flaky-no-replay"
    pid = await new_x402_payment(url)
    probe, sign, send = _requests(dev, pid, url, policy)
    await _run(acts.probe, probe)
    signed = await _run(acts.sign, sign)
    with pytest.raises(ApplicationError) as err:
        await _run(acts.send, send.model_copy(update={"timeout_seconds": SHORT_TIMEOUT}))
    assert err.value.type == "X402Ambiguous" and not err.value.non_retryable
    result = await _run(acts.send, send)  # the retry: same authorization, the server says "nonce used"
    assert (result.outcome, result.settled, result.status_code, result.attempts) == (x.PAID_RESPONSE_LOST, True, 402, 2)
    details = await payment_details(db_engine, pid)
    assert details["signed"]["authorization_nonce"] == signed.authorization_nonce
    assert [a["status"] for a in details["attempts"]] == [None, 402]
    assert await transfers_to(w3, token_address, paid_service.pay_to) == [PRICE]


async def test_free_url_is_recorded_and_nothing_is_signed(acts, dev, paid_service, new_x402_payment, policy, db_engine):
    url = paid_service.url + "/healthz"
    pid = await new_x402_payment(url)
    probe, sign, send = _requests(dev, pid, url, policy)
    probed = await _run(acts.probe, probe)
    assert (probed.payment_required, probed.status_code) == (False, 200)
    for fn, arg in ((acts.sign, sign), (acts.send, send)):  # no requirements: nothing to sign or send
        with pytest.raises(ApplicationError) as err:
            await _run(fn, arg)
        assert err.value.type == "X402State" and err.value.non_retryable
    details = await payment_details(db_engine, pid)
    assert details["outcome"] == x.NO_PAYMENT_REQUIRED and details["response"]["status"] == 200
    assert "signed" not in details
