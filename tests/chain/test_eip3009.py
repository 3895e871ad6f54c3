"""EIP-3009 on Paygent USD, signed with eth-account EIP-712 typed data and relayed on anvil.

The payer in these tests never holds ETH: a relayer (the owner) submits the signed authorization,
which is the whole point of EIP-3009. Both the (bytes signature) and the (v, r, s) forms are used.
"""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from paygent.chain.token import TransactionReverted, balance_of, send_transaction
from tests.chain.eip3009 import (
    call_data,
    chain_time,
    new_nonce,
    sign_authorization,
    sign_cancel,
    vrs,
)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


async def test_transfer_with_authorization_moves_funds_once_and_replay_reverts(w3, owner, token, contract, new_account):
    payer = await new_account(tokens=1_000_000)
    payee = await new_account()
    now = await chain_time(w3)
    nonce = new_nonce()
    signed = sign_authorization(payer, token, payee.address, 400_000, 0, now + 3600, nonce)
    args = [payer.address, payee.address, 400_000, 0, now + 3600, nonce]
    assert not await contract.functions.authorizationState(payer.address, nonce).call()

    tx_hash = await send_transaction(
        w3, owner, token, call_data(contract, "transferWithAuthorization", args + [signed.signature])
    )
    receipt = await w3.eth.get_transaction_receipt(tx_hash)
    (used,) = contract.events.AuthorizationUsed().process_receipt(receipt, errors=DISCARD)
    assert (used.args.authorizer, used.args.nonce) == (payer.address, nonce)
    assert await contract.functions.authorizationState(payer.address, nonce).call()
    assert await balance_of(w3, token, payer.address) == 600_000
    assert await balance_of(w3, token, payee.address) == 400_000

    # Replaying the same authorization, in either form, is refused and moves nothing.
    for replay in (args + [signed.signature], args + vrs(signed)):
        with pytest.raises(TransactionReverted, match="FiatTokenV2: authorization is used or canceled"):
            await send_transaction(w3, owner, token, call_data(contract, "transferWithAuthorization", replay))
    assert await balance_of(w3, token, payer.address) == 600_000
    assert await balance_of(w3, token, payee.address) == 400_000


async def test_transfer_with_authorization_vrs_form(w3, owner, token, contract, new_account):
    payer = await new_account(tokens=50)
    payee = await new_account()
    now = await chain_time(w3)
    nonce = new_nonce()
    signed = sign_authorization(payer, token, payee.address, 50, now - 10, now + 600, nonce)
    args = [payer.address, payee.address, 50, now - 10, now + 600, nonce] + vrs(signed)
    await send_transaction(w3, owner, token, call_data(contract, "transferWithAuthorization", args))
    assert await balance_of(w3, token, payer.address) == 0
    assert await balance_of(w3, token, payee.address) == 50
    assert await contract.functions.authorizationState(payer.address, nonce).call()


async def test_expired_and_not_yet_valid_authorizations_revert(w3, owner, token, contract, new_account):
    payer = await new_account(tokens=10)
    payee = await new_account()
    now = await chain_time(w3)
    cases = [
        ((0, now - 1), "FiatTokenV2: authorization is expired"),
        ((now + 3600, now + 7200), "FiatTokenV2: authorization is not yet valid"),
    ]
    for (valid_after, valid_before), reason in cases:
        nonce = new_nonce()
        signed = sign_authorization(payer, token, payee.address, 10, valid_after, valid_before, nonce)
        args = [payer.address, payee.address, 10, valid_after, valid_before, nonce]
        for form in (args + [signed.signature], args + vrs(signed)):
            with pytest.raises(TransactionReverted, match=reason):
                await send_transaction(w3, owner, token, call_data(contract, "transferWithAuthorization", form))
        assert not await contract.functions.authorizationState(payer.address, nonce).call()
    assert await balance_of(w3, token, payer.address) == 10


async def test_signatures_from_anyone_else_or_malleable_are_rejected(w3, owner, token, contract, new_account):
    payer = await new_account(tokens=10)
    thief = await new_account()
    now = await chain_time(w3)
    nonce = new_nonce()
    forged = sign_authorization(thief, token, thief.address, 10, 0, now + 600, nonce, from_address=payer.address)
    args = [payer.address, thief.address, 10, 0, now + 600, nonce]
    with pytest.raises(TransactionReverted, match="FiatTokenV2: invalid signature"):
        await send_transaction(
            w3, owner, token, call_data(contract, "transferWithAuthorization", args + [forged.signature])
        )
    # The payer's own signature with s flipped to the high half (still valid math) is refused too.
    good = sign_authorization(payer, token, thief.address, 10, 0, now + 600, nonce)
    high_s = (SECP256K1_N - good.s).to_bytes(32, "big")
    flipped = [55 - good.v, good.r.to_bytes(32, "big"), high_s]
    with pytest.raises(TransactionReverted, match="ECRecover: invalid signature 's' value"):
        await send_transaction(w3, owner, token, call_data(contract, "transferWithAuthorization", args + flipped))
    assert await balance_of(w3, token, payer.address) == 10


async def test_receive_with_authorization_only_by_the_payee(w3, owner, token, contract, new_account):
    payer = await new_account(tokens=300)
    payee = await new_account(gas=True)
    now = await chain_time(w3)
    for form, amount in (("bytes", 100), ("vrs", 200)):
        nonce = new_nonce()
        signed = sign_authorization(
            payer, token, payee.address, amount, 0, now + 600, nonce, primary_type="ReceiveWithAuthorization"
        )
        args = [payer.address, payee.address, amount, 0, now + 600, nonce]
        args += [signed.signature] if form == "bytes" else vrs(signed)
        data = call_data(contract, "receiveWithAuthorization", args)
        with pytest.raises(TransactionReverted, match="FiatTokenV2: caller must be the payee"):
            await send_transaction(w3, owner, token, data)
        await send_transaction(w3, payee, token, data)
    assert await balance_of(w3, token, payer.address) == 0
    assert await balance_of(w3, token, payee.address) == 300

    # A TransferWithAuthorization signature is not a ReceiveWithAuthorization one (distinct type hashes).
    nonce = new_nonce()
    signed = sign_authorization(payee, token, owner.address, 1, 0, now + 600, nonce)
    with pytest.raises(TransactionReverted, match="FiatTokenV2: invalid signature"):
        await send_transaction(
            w3,
            owner,
            token,
            call_data(
                contract,
                "receiveWithAuthorization",
                [payee.address, owner.address, 1, 0, now + 600, nonce, signed.signature],
            ),
        )


async def test_cancel_authorization_burns_the_nonce(w3, owner, token, contract, new_account):
    payer = await new_account(tokens=1_000)
    payee = await new_account()
    now = await chain_time(w3)
    for form in ("bytes", "vrs"):
        nonce = new_nonce()
        signed = sign_authorization(payer, token, payee.address, 1_000, 0, now + 600, nonce)
        cancel = sign_cancel(payer, token, nonce)
        cancel_args = [payer.address, nonce] + ([cancel.signature] if form == "bytes" else vrs(cancel))
        tx_hash = await send_transaction(w3, owner, token, call_data(contract, "cancelAuthorization", cancel_args))
        receipt = await w3.eth.get_transaction_receipt(tx_hash)
        (canceled,) = contract.events.AuthorizationCanceled().process_receipt(receipt, errors=DISCARD)
        assert (canceled.args.authorizer, canceled.args.nonce) == (payer.address, nonce)
        assert await contract.functions.authorizationState(payer.address, nonce).call()
        with pytest.raises(TransactionReverted, match="FiatTokenV2: authorization is used or canceled"):
            await send_transaction(
                w3,
                owner,
                token,
                call_data(
                    contract,
                    "transferWithAuthorization",
                    [payer.address, payee.address, 1_000, 0, now + 600, nonce, signed.signature],
                ),
            )
        with pytest.raises(TransactionReverted, match="FiatTokenV2: authorization is used or canceled"):
            await send_transaction(w3, owner, token, call_data(contract, "cancelAuthorization", cancel_args))
    assert await balance_of(w3, token, payer.address) == 1_000
    assert await balance_of(w3, token, payee.address) == 0


async def test_only_the_authorizer_can_cancel(w3, owner, token, contract, new_account):
    payer = await new_account()
    nonce = new_nonce()
    stranger_sig = sign_cancel(owner, token, nonce)
    data = call_data(contract, "cancelAuthorization", [payer.address, nonce, stranger_sig.signature])
    with pytest.raises(TransactionReverted, match="FiatTokenV2: invalid signature"):
        await send_transaction(w3, owner, token, data)
    assert not await contract.functions.authorizationState(payer.address, nonce).call()


async def test_unknown_selector_reverts(w3, owner, token):
    with pytest.raises(TransactionReverted, match="PaygentUSD: unknown function"):
        await send_transaction(w3, owner, token, bytes.fromhex("deadbeef") + bytes(64))
