"""The exactly-once x402 client against the real paid service on anvil (official SDK on both sides)."""

from __future__ import annotations

import pytest
from eth_utils import keccak, to_checksum_address
from web3 import AsyncWeb3

from paygent.chain.token import balance_of
from paygent.x402 import client as x402c
from tests.x402.conftest import SHORT_TIMEOUT

PRICE = 10_000  # /weather, /flaky, /fail-after-pay: 0.01 USDC
_TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()


async def transfers_to(w3: AsyncWeb3, token: str, to: str) -> list[int]:
    """Amounts of every token Transfer event to `to`, from the chain's logs."""
    logs = await w3.eth.get_logs(
        {
            "address": token,
            "fromBlock": 0,
            "toBlock": "latest",
            "topics": [_TRANSFER, None, "0x" + "00" * 12 + to[2:].lower()],
        }
    )
    return [int.from_bytes(bytes(log["data"]), "big") for log in logs]


async def _signed(service, path: str, payer, policy) -> x402c.StoredPayment:
    requirements = await x402c.probe(service.url + path, egress=service.egress)
    assert isinstance(requirements, x402c.Requirements) and requirements.version == 2
    assert x402c.check(requirements, policy) is None
    return await x402c.sign(requirements, payer, policy)


async def test_paid_request_moves_exactly_the_price(paid_service, new_payer, policy, w3, token_address):
    payer = await new_payer(tokens=1_000_000)
    stored = await _signed(paid_service, "/weather", payer, policy)
    assert stored.identifier_sent and stored.payer == payer.address
    assert await balance_of(w3, token_address, paid_service.pay_to) == 0  # signing moved nothing

    answer = await x402c.send(paid_service.url + "/weather", stored, egress=paid_service.egress)
    assert answer.status == 200 and answer.settled, answer
    assert '"forecast"' in answer.body_excerpt
    tx = answer.receipt["transaction"]
    assert (await w3.eth.get_transaction_receipt(tx))["status"] == 1
    assert await balance_of(w3, token_address, paid_service.pay_to) == PRICE
    assert await balance_of(w3, token_address, payer.address) == 1_000_000 - PRICE
    assert await x402c.authorization_used(w3, stored)


async def test_resend_after_lost_response_pays_once(paid_service, new_payer, policy, w3, token_address):
    payer = await new_payer(tokens=100_000)
    stored = await _signed(paid_service, "/flaky", payer, policy)
    with pytest.raises(x402c.AmbiguousResult):  # settled on the server, answer never arrived
        await x402c.send(paid_service.url + "/flaky", stored, egress=paid_service.egress, timeout=SHORT_TIMEOUT)
    assert await balance_of(w3, token_address, paid_service.pay_to) == PRICE

    # the same header, byte for byte
    again = await x402c.send(paid_service.url + "/flaky", stored, egress=paid_service.egress)
    assert again.status == 200 and again.settled
    assert again.headers.get("idempotent-replayed") == "true"
    assert await transfers_to(w3, token_address, paid_service.pay_to) == [PRICE]
    assert await balance_of(w3, token_address, payer.address) == 100_000 - PRICE


async def test_without_replay_support_a_resend_is_refused_and_the_chain_tells(
    paid_service, new_payer, policy, w3, token_address
):
    payer = await new_payer(tokens=100_000)
    stored = await _signed(paid_service, "/flaky-no-replay", payer, policy)
    assert not stored.identifier_sent  # the server did not declare payment-identifier
    with pytest.raises(x402c.AmbiguousResult):
        await x402c.send(
            paid_service.url + "/flaky-no-replay", stored, egress=paid_service.egress, timeout=SHORT_TIMEOUT
        )
    again = await x402c.send(paid_service.url + "/flaky-no-replay", stored, egress=paid_service.egress)
    assert again.status == 402 and not again.settled
    assert again.payment_required["error"] == "invalid_exact_evm_nonce_already_used"
    assert await x402c.authorization_used(w3, stored)  # paid once: reconcile, never re-sign
    assert await transfers_to(w3, token_address, paid_service.pay_to) == [PRICE]


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/overcharge", "exceeds the per-request cap of 50000 atomic units"),
        ("/premium", "amount 2000000 atomic units exceeds"),
        ("/wrong-network", "network 'eip155:84532' is not allowed"),
        ("/unknown-asset", "is not an allowed asset"),
        ("/legacy-v1", "network 'base-sepolia' is not allowed"),
    ],
)
async def test_unacceptable_requirements_get_nothing_signed(paid_service, new_payer, policy, path, expected):
    payer = await new_payer()
    requirements = await x402c.probe(paid_service.url + path, egress=paid_service.egress)
    assert isinstance(requirements, x402c.Requirements)
    assert requirements.version == (1 if path == "/legacy-v1" else 2)
    assert expected in x402c.check(requirements, policy)
    with pytest.raises(x402c.PaymentRefused, match=expected.split("'")[0]):
        await x402c.sign(requirements, payer, policy)


async def test_recipient_allowlist_refuses_other_recipients(paid_service, new_payer, policy):
    requirements = await x402c.probe(paid_service.url + "/weather", egress=paid_service.egress)
    strict = policy.model_copy(update={"recipient_allowlist": ["0x" + "11" * 20]})
    assert f"recipient {to_checksum_address(paid_service.pay_to)} is not on the allowlist" == x402c.check(
        requirements, strict
    )
    allowed = policy.model_copy(update={"recipient_allowlist": [paid_service.pay_to.lower()]})
    assert x402c.check(requirements, allowed) is None


async def test_server_error_after_payment_keeps_the_receipt(paid_service, new_payer, policy, w3, token_address):
    payer = await new_payer(tokens=100_000)
    stored = await _signed(paid_service, "/fail-after-pay", payer, policy)
    answer = await x402c.send(paid_service.url + "/fail-after-pay", stored, egress=paid_service.egress)
    assert answer.status == 500  # a 500, not a 402: nothing invites paying again
    assert answer.settled and answer.receipt["payer"] == payer.address
    assert await transfers_to(w3, token_address, paid_service.pay_to) == [PRICE]


async def test_free_resource_is_a_plain_response(paid_service):
    answer = await x402c.probe(paid_service.url + "/healthz", egress=paid_service.egress)
    assert isinstance(answer, x402c.Response) and answer.status == 200 and answer.receipt is None


async def test_identifier_reused_for_another_payment_gets_409(paid_service, new_payer, policy, w3, token_address):
    payer = await new_payer(tokens=100_000)
    requirements = await x402c.probe(paid_service.url + "/weather", egress=paid_service.egress)
    first = await x402c.sign(requirements, payer, policy, payment_identifier="paygent_same_identifier_01")
    other = await x402c.sign(requirements, payer, policy, payment_identifier="paygent_same_identifier_01")
    assert first.authorization_nonce != other.authorization_nonce
    assert (await x402c.send(paid_service.url + "/weather", first, egress=paid_service.egress)).settled
    conflict = await x402c.send(paid_service.url + "/weather", other, egress=paid_service.egress)
    assert conflict.status == 409 and conflict.receipt is None
    assert await transfers_to(w3, token_address, paid_service.pay_to) == [PRICE]
    assert not await x402c.authorization_used(w3, other)
