"""Paygent USD (contracts/PaygentUSD.vy): deploy, mint, read balances, and send transactions.

Every transaction is built here and signed locally with eth-account (`signed.raw_transaction`),
with EIP-1559 fees (maxFeePerGas = 2 * baseFee + priority fee), then sent raw; helpers wait for
the receipt and raise `TransactionReverted` if the chain rejects it. Private keys never appear in
logs or error messages: errors carry addresses, transaction hashes and revert reasons only.
Amounts are integers in atomic units (6 decimals).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import time
from typing import TypedDict, cast

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_account.types import TransactionDictType
from eth_typing import HexStr
from eth_utils import keccak, to_checksum_address
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError
from web3.types import TxParams, Wei

from paygent.chain.contracts import compile_contract

TOKEN_CONTRACT = "PaygentUSD"
TOKEN_NAME = "Paygent USD"
TOKEN_VERSION = "2"
TOKEN_SYMBOL = "USDC"
TOKEN_DECIMALS = 6
# The dev stack's second token: the same contract under another name and symbol (constructor arguments)
EURC_NAME = "Paygent EUR"
EURC_SYMBOL = "EURC"

RECEIPT_TIMEOUT_SECONDS = 30
DEFAULT_PRIORITY_FEE_WEI = 1_000_000_000  # 1 gwei, when the node cannot suggest one
_TRANSFER_SELECTOR = keccak(text="transfer(address,uint256)")[:4]

# Argument names follow the compiler's ABI (`from_`, `amount`: `from` and `value` are reserved in
# Vyper); names do not affect selectors, which are USDC's.
_AUTH_INPUTS = [
    ("from_", "address"),
    ("to", "address"),
    ("amount", "uint256"),
    ("validAfter", "uint256"),
    ("validBefore", "uint256"),
    ("nonce", "bytes32"),
]
_VRS_INPUTS = [("v", "uint8"), ("r", "bytes32"), ("s", "bytes32")]


class TransactionReverted(RuntimeError):
    """A transaction was rejected by the chain (at estimation or in its receipt)."""


def _function_entry(name: str, inputs: list[tuple[str, str]]) -> dict:
    return {
        "type": "function",
        "name": name,
        "stateMutability": "nonpayable",
        "outputs": [],
        "inputs": [{"name": n, "type": t} for n, t in inputs],
    }


# The (v, r, s) overloads USDC v2.2 has. Vyper cannot declare two functions with one name, so the
# contract dispatches these selectors in `__default__` and the compiler's ABI does not list them.
VRS_OVERLOADS_ABI = [
    _function_entry("transferWithAuthorization", _AUTH_INPUTS + _VRS_INPUTS),
    _function_entry("receiveWithAuthorization", _AUTH_INPUTS + _VRS_INPUTS),
    _function_entry("cancelAuthorization", [("authorizer", "address"), ("nonce", "bytes32")] + _VRS_INPUTS),
]


@functools.lru_cache(maxsize=1)
def _abi() -> list:
    return compile_contract(TOKEN_CONTRACT).abi + VRS_OVERLOADS_ABI


def token_abi() -> list:
    """The token's full ABI: the compiler's entries plus the three (v, r, s) overloads."""
    return copy.deepcopy(_abi())


def transfer_calldata(to: str, amount_atomic: int) -> bytes:
    """ABI-encoded `transfer(address,uint256)` call data (selector + arguments)."""
    if not isinstance(amount_atomic, int) or isinstance(amount_atomic, bool) or amount_atomic < 0:
        raise ValueError("amount_atomic must be a non-negative integer of atomic units")
    return _TRANSFER_SELECTOR + abi_encode(["address", "uint256"], [to_checksum_address(to), amount_atomic])


def _token(w3: AsyncWeb3, token: str):
    return w3.eth.contract(address=to_checksum_address(token), abi=_abi())


class FeeFields(TypedDict):
    """The EIP-1559 fee fields of a transaction, in wei."""

    maxFeePerGas: Wei
    maxPriorityFeePerGas: Wei


async def fee_fields(w3: AsyncWeb3) -> FeeFields:
    """EIP-1559 fee fields: maxFeePerGas = 2 * latest baseFee + priority fee."""
    block = await w3.eth.get_block("latest")
    base_fee = int(block.get("baseFeePerGas") or 0)
    try:
        priority = int(await w3.eth.max_priority_fee)
    except Exception:  # nodes without eth_maxPriorityFeePerGas
        priority = DEFAULT_PRIORITY_FEE_WEI
    return {"maxFeePerGas": Wei(2 * base_fee + priority), "maxPriorityFeePerGas": Wei(priority)}


class FeeCache:
    """`fee_fields` read at most once per `ttl` seconds, shared by concurrent callers (one read in flight).

    A first signing takes the cached fields: maxFeePerGas is twice the base fee of a block at most `ttl` old, and
    the base fee rises at most 12.5% a block, so it still covers the next blocks; a replacement reads afresh.
    Under load this saves two node calls per payment (eth_getBlockByNumber, eth_maxPriorityFeePerGas)."""

    def __init__(self, w3: AsyncWeb3, ttl: float = 1.0) -> None:
        self.w3, self.ttl = w3, ttl
        self._fees: FeeFields | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> FeeFields:
        if self._fees is not None and time.monotonic() < self._expires:
            return self._fees
        async with self._lock:
            if self._fees is None or time.monotonic() >= self._expires:
                self._fees = await fee_fields(self.w3)
                self._expires = time.monotonic() + self.ttl
            return self._fees


async def send_transaction(
    w3: AsyncWeb3, sender: LocalAccount, to: str | None, data: bytes = b"", value_wei: int = 0, *, wait: bool = True
) -> HexStr:
    """Sign `sender`'s transaction locally, send it raw, and (by default) wait for a successful receipt.

    `to=None` creates a contract. Gas is estimated, so a call that would revert raises
    `TransactionReverted` with the revert reason before anything is sent. Returns the 0x tx hash.
    """
    tx: TxParams = {
        "from": sender.address,
        "value": Wei(value_wei),
        "data": data,
        "type": 2,
        "chainId": await w3.eth.chain_id,
        "nonce": await w3.eth.get_transaction_count(sender.address, "pending"),
    }
    if to is not None:
        tx["to"] = to_checksum_address(to)
    fees = await fee_fields(w3)
    tx["maxFeePerGas"], tx["maxPriorityFeePerGas"] = fees["maxFeePerGas"], fees["maxPriorityFeePerGas"]
    try:
        tx["gas"] = await w3.eth.estimate_gas(tx)
    except ContractLogicError as exc:
        raise TransactionReverted(f"transaction from {sender.address} reverted: {exc.message or exc}") from exc
    # the same dict: eth-account types it as a plain dict, web3 as the TypedDict TxParams
    signed = sender.sign_transaction(cast(TransactionDictType, tx))
    tx_hash = AsyncWeb3.to_hex(await w3.eth.send_raw_transaction(signed.raw_transaction))
    if wait:
        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_SECONDS, poll_latency=0.05)
        if receipt["status"] != 1:
            raise TransactionReverted(f"transaction {tx_hash} from {sender.address} reverted on chain")
    return tx_hash


async def deploy_token(
    w3: AsyncWeb3, deployer: LocalAccount, name: str = TOKEN_NAME, symbol: str = TOKEN_SYMBOL
) -> str:
    """Deploy a fresh token (contracts/PaygentUSD.vy, 6 decimals) named `name` / `symbol`, owned by `deployer`;
    returns its checksummed address. The defaults are the USDC the x402 domain and the dev stack know."""
    if not 0 < len(name.encode()) <= 32 or not 0 < len(symbol.encode()) <= 8:
        raise ValueError("a token's name is 1..32 bytes and its symbol 1..8 bytes")
    bytecode = bytes.fromhex(compile_contract(TOKEN_CONTRACT).bytecode.removeprefix("0x"))
    tx_hash = await send_transaction(w3, deployer, None, bytecode + abi_encode(["string", "string"], [name, symbol]))
    address = (await w3.eth.get_transaction_receipt(tx_hash))["contractAddress"]
    if address is None:
        raise TransactionReverted(f"deployment {tx_hash} created no contract")
    return to_checksum_address(address)


async def mint(w3: AsyncWeb3, token: str, owner: LocalAccount, to: str, amount_atomic: int) -> str:
    """Mint `amount_atomic` to `to` (owner only); returns the tx hash once mined successfully."""
    if not isinstance(amount_atomic, int) or isinstance(amount_atomic, bool) or amount_atomic < 0:
        raise ValueError("amount_atomic must be a non-negative integer of atomic units")
    data = _token(w3, token).encode_abi("mint", args=[to_checksum_address(to), amount_atomic])
    return await send_transaction(w3, owner, token, bytes.fromhex(data.removeprefix("0x")))


async def transfer(w3: AsyncWeb3, token: str, sender: LocalAccount, to: str, amount_atomic: int) -> str:
    """ERC-20 `transfer` from `sender` (who pays the gas); returns the tx hash once mined."""
    return await send_transaction(w3, sender, token, transfer_calldata(to, amount_atomic))


async def balance_of(w3: AsyncWeb3, token: str, holder: str, block: int | str = "latest") -> int:
    """`holder`'s token balance in atomic units (as of `block`)."""
    return int(await _token(w3, token).functions.balanceOf(to_checksum_address(holder)).call(block_identifier=block))


async def is_deployed(w3: AsyncWeb3, address: str) -> bool:
    """Whether any contract code is present at `address`."""
    return len(await w3.eth.get_code(to_checksum_address(address))) > 0


async def send_eth(w3: AsyncWeb3, sender: LocalAccount, to: str, wei: int) -> str:
    """Send `wei` of the native coin (gas money) to `to`; returns the tx hash once mined."""
    if not isinstance(wei, int) or isinstance(wei, bool) or wei < 0:
        raise ValueError("wei must be a non-negative integer")
    return await send_transaction(w3, sender, to, b"", wei)
