"""EIP-3009 from a smart-contract wallet: Paygent USD checks its signature with EIP-1271, as USDC v2.2 does.

The wallet below is a minimal test double compiled from source here: it approves any digest its
owner key signed. The authorization's `from` is the wallet; the owner key never holds tokens.
"""

from __future__ import annotations

import subprocess

import pytest
from eth_abi import encode
from web3 import AsyncWeb3

from paygent.chain.contracts import vyper_binary
from paygent.chain.token import TransactionReverted, balance_of, send_transaction
from tests.chain.eip3009 import call_data, chain_time, new_nonce, sign_authorization, vrs

WALLET_SOURCE = """# pragma version ~=0.4.3
owner: public(address)

@deploy
def __init__(owner: address):
    self.owner = owner

@external
@view
def isValidSignature(digest: bytes32, signature: Bytes[65]) -> bytes4:
    r: bytes32 = extract32(signature, 0)
    s: bytes32 = extract32(signature, 32)
    v: uint256 = convert(convert(slice(signature, 64, 1), bytes1), uint256)
    if ecrecover(digest, v, r, s) == self.owner:
        return 0x1626ba7e
    return 0xffffffff
"""


async def _deploy_wallet(w3: AsyncWeb3, deployer, owner_address: str, tmp_path) -> str:
    source = tmp_path / "Wallet1271.vy"
    source.write_text(WALLET_SOURCE)
    out = subprocess.run(
        [str(vyper_binary()), "-f", "bytecode", str(source)], capture_output=True, text=True, check=True
    )
    init = bytes.fromhex(out.stdout.strip().removeprefix("0x")) + encode(["address"], [owner_address])
    tx_hash = await send_transaction(w3, deployer, None, init)
    return (await w3.eth.get_transaction_receipt(tx_hash))["contractAddress"]


async def test_smart_wallet_authorization_is_checked_with_eip1271(w3, owner, token, contract, new_account, tmp_path):
    wallet_key = await new_account()
    stranger = await new_account()
    payee = await new_account()
    wallet = await _deploy_wallet(w3, owner, wallet_key.address, tmp_path)
    await send_transaction(w3, owner, token, call_data(contract, "mint", [wallet, 700]))
    now = await chain_time(w3)
    nonce = new_nonce()
    args = [wallet, payee.address, 700, 0, now + 600, nonce]

    forged = sign_authorization(stranger, token, payee.address, 700, 0, now + 600, nonce, from_address=wallet)
    for form in (args + [forged.signature], args + vrs(forged)):
        with pytest.raises(TransactionReverted, match="FiatTokenV2: invalid signature"):
            await send_transaction(w3, owner, token, call_data(contract, "transferWithAuthorization", form))

    signed = sign_authorization(wallet_key, token, payee.address, 700, 0, now + 600, nonce, from_address=wallet)
    await send_transaction(w3, owner, token, call_data(contract, "transferWithAuthorization", args + vrs(signed)))
    assert await balance_of(w3, token, wallet) == 0
    assert await balance_of(w3, token, payee.address) == 700
    assert await contract.functions.authorizationState(wallet, nonce).call()
