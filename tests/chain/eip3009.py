"""Test-side EIP-3009 signing with eth-account's EIP-712 typed data (independent of the contract code)."""

from __future__ import annotations

import os

from eth_account.datastructures import SignedMessage
from eth_account.signers.local import LocalAccount

from paygent.chain.anvil import DEV_CHAIN_ID
from paygent.chain.token import TOKEN_NAME, TOKEN_VERSION

_AUTH_FIELDS = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]
DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def domain(token: str) -> dict:
    return {"name": TOKEN_NAME, "version": TOKEN_VERSION, "chainId": DEV_CHAIN_ID, "verifyingContract": token}


async def chain_time(w3) -> int:
    """The latest block's timestamp (the clock `validAfter`/`validBefore` are checked against)."""
    return int((await w3.eth.get_block("latest"))["timestamp"])


def new_nonce() -> bytes:
    return os.urandom(32)


def sign_authorization(
    signer: LocalAccount,
    token: str,
    to: str,
    value: int,
    valid_after: int,
    valid_before: int,
    nonce: bytes,
    *,
    primary_type: str = "TransferWithAuthorization",
    from_address: str | None = None,
) -> SignedMessage:
    """Sign a Transfer/ReceiveWithAuthorization for `from_address` (default: the signer itself)."""
    message = {
        "from": from_address or signer.address,
        "to": to,
        "value": value,
        "validAfter": valid_after,
        "validBefore": valid_before,
        "nonce": nonce,
    }
    return signer.sign_typed_data(
        full_message={
            "types": {"EIP712Domain": DOMAIN_FIELDS, primary_type: _AUTH_FIELDS},
            "primaryType": primary_type,
            "domain": domain(token),
            "message": message,
        }
    )


def sign_cancel(signer: LocalAccount, token: str, nonce: bytes) -> SignedMessage:
    """Sign a CancelAuthorization for the signer's own `nonce`."""
    return signer.sign_typed_data(
        full_message={
            "types": {
                "EIP712Domain": DOMAIN_FIELDS,
                "CancelAuthorization": [
                    {"name": "authorizer", "type": "address"},
                    {"name": "nonce", "type": "bytes32"},
                ],
            },
            "primaryType": "CancelAuthorization",
            "domain": domain(token),
            "message": {"authorizer": signer.address, "nonce": nonce},
        }
    )


def vrs(signed: SignedMessage) -> list:
    """The (v, r, s) arguments of the overloads that take a split signature."""
    return [signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")]


def call_data(contract, fn: str, args: list) -> bytes:
    """ABI-encode a call; web3 picks the (bytes) or (v, r, s) overload from the arguments."""
    return bytes.fromhex(contract.encode_abi(fn, args=args).removeprefix("0x"))
