"""The official x402 SDK pays with Paygent USD on anvil: its client signs, its facilitator verifies and settles.

No HTTP and nothing mocked: the payload the x402 client produces goes straight into the x402
facilitator, which checks the EIP-712 signature against (name, version "2", 31337, token), simulates
`transferWithAuthorization(..., v, r, s)` with eth_call and then sends it from its own account.
"""

from __future__ import annotations

from x402 import x402Client, x402Facilitator
from x402.mechanisms.evm import EthAccountSigner, FacilitatorWeb3Signer
from x402.mechanisms.evm.exact import register_exact_evm_client, register_exact_evm_facilitator
from x402.schemas import PaymentRequired, PaymentRequirements, ResourceInfo

from paygent.chain.anvil import dev_account
from paygent.chain.token import TOKEN_NAME, TOKEN_VERSION, balance_of

NETWORK = "eip155:31337"
PRICE_ATOMIC = 10_000  # 0.01 USDC


def _requirements(token: str, pay_to: str) -> PaymentRequirements:
    """What a Paygent-priced resource asks for: atomic amount, our token, and its EIP-712 domain."""
    return PaymentRequirements(
        scheme="exact",
        network=NETWORK,
        asset=token,
        amount=str(PRICE_ATOMIC),
        pay_to=pay_to,
        max_timeout_seconds=300,
        extra={"name": TOKEN_NAME, "version": TOKEN_VERSION},
    )


def _facilitator(anvil_rpc: str) -> tuple[x402Facilitator, str]:
    account = dev_account(2)  # the facilitator pays the gas; the payer needs none
    signer = FacilitatorWeb3Signer(private_key=account.key.hex(), rpc_url=anvil_rpc)
    facilitator = x402Facilitator()
    register_exact_evm_facilitator(facilitator, signer, networks=NETWORK)
    return facilitator, account.address


async def test_x402_client_payment_settles_through_the_x402_facilitator(anvil_rpc, w3, token, contract, new_account):
    payer = await new_account(tokens=25_000)  # no ETH at all
    merchant = await new_account()
    requirements = _requirements(token, merchant.address)

    client = x402Client()
    register_exact_evm_client(client, EthAccountSigner(payer))
    client.set_spend_controls(
        {"allowed_assets": [{"network": NETWORK, "asset": token, "max_amount_per_payment": str(PRICE_ATOMIC)}]}
    )
    payment = await client.create_payment_payload(
        PaymentRequired(accepts=[requirements], resource=ResourceInfo(url="http://paygent.test/paid"))
    )
    authorization = payment.payload["authorization"]
    assert authorization["from"].lower() == payer.address.lower()
    assert int(authorization["value"]) == PRICE_ATOMIC

    facilitator, facilitator_address = _facilitator(anvil_rpc)
    facilitator_eth_before = await w3.eth.get_balance(facilitator_address)

    verified = await facilitator.verify(payment, requirements)
    assert verified.is_valid, verified.invalid_reason
    assert verified.payer.lower() == payer.address.lower()

    settled = await facilitator.settle(payment, requirements)
    assert settled.success, (settled.error_reason, settled.error_message)
    assert settled.network == NETWORK and settled.transaction.startswith("0x")

    # Real balances on chain: exactly the price moved; the facilitator (not the payer) paid gas.
    assert await balance_of(w3, token, payer.address) == 25_000 - PRICE_ATOMIC
    assert await balance_of(w3, token, merchant.address) == PRICE_ATOMIC
    assert await w3.eth.get_balance(payer.address) == 0
    assert await w3.eth.get_balance(facilitator_address) < facilitator_eth_before
    receipt = await w3.eth.get_transaction_receipt(settled.transaction)
    assert receipt["status"] == 1 and receipt["to"] == token
    assert receipt["gasUsed"] < 200_000  # x402's facilitator sends with a fixed 500k gas limit
    nonce = bytes.fromhex(authorization["nonce"].removeprefix("0x"))
    assert await contract.functions.authorizationState(payer.address, nonce).call()

    # The same payment again: the facilitator's simulation hits our USDC revert string and maps it
    # to x402's own reason code, and a settle attempt moves nothing.
    again = await facilitator.verify(payment, requirements)
    assert not again.is_valid
    assert again.invalid_reason == "invalid_exact_evm_nonce_already_used"
    replay = await facilitator.settle(payment, requirements)
    assert not replay.success
    assert await balance_of(w3, token, merchant.address) == PRICE_ATOMIC


async def test_x402_facilitator_reports_insufficient_balance(anvil_rpc, token, new_account):
    payer = await new_account(tokens=PRICE_ATOMIC - 1)
    merchant = await new_account()
    requirements = _requirements(token, merchant.address)
    client = x402Client()
    register_exact_evm_client(client, EthAccountSigner(payer))
    client.set_spend_controls({"allowed_assets": [{"network": NETWORK, "asset": token}]})
    payment = await client.create_payment_payload(PaymentRequired(accepts=[requirements]))
    facilitator, _ = _facilitator(anvil_rpc)
    verified = await facilitator.verify(payment, requirements)
    assert not verified.is_valid
    assert verified.invalid_reason == "invalid_exact_evm_insufficient_balance"
