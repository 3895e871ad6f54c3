"""Uniswap V2, the real contracts: deploy (factory, WETH9, router02), seed a pool, quote, build calls, read logs.

The compiled contracts come from npm `@uniswap/v2-core@1.0.1` and `@uniswap/v2-periphery@1.1.0-beta.0`
(node_modules/@uniswap/*/build/*.json: `abi` and `bytecode`). The router computes pair addresses with the
init-code hash it was compiled with (`96e8ac42...`); `check_init_code_hash` proves it equals the keccak of
v2-core's pair bytecode, so a factory deployed from these artifacts works with this router unchanged. VVS on
Cronos and Uniswap's forks on Base share this router interface: pointing Paygent at one is configuration.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import AsyncWeb3

from paygent.chain.token import TransactionReverted, send_transaction
from paygent.paths import REPO_ROOT

UNISWAP_DIR = REPO_ROOT / "node_modules" / "@uniswap"
ARTIFACTS = {
    "factory": "v2-core/build/UniswapV2Factory.json",
    "pair": "v2-core/build/UniswapV2Pair.json",
    "router": "v2-periphery/build/UniswapV2Router02.json",
    "weth": "v2-periphery/build/WETH9.json",
    "erc20": "v2-core/build/IERC20.json",
}
ROUTER_INIT_CODE_HASH = "96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"
ROUTER_NAME = "Uniswap V2"
MAX_DEADLINE_SECONDS = 300

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
SWAP_TOPIC = "0x" + keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)").hex()
_APPROVE = keccak(text="approve(address,uint256)")[:4]
_SWAP_EXACT_IN = keccak(text="swapExactTokensForTokens(uint256,uint256,address[],address,uint256)")[:4]


class UniswapMissing(RuntimeError):
    """The npm packages are not installed (run `npm ci`)."""


@functools.cache
def artifact(name: str) -> dict[str, Any]:
    """{'abi': [...], 'bytecode': '0x...'} of factory, pair, router or weth."""
    path = UNISWAP_DIR / ARTIFACTS[name]
    if not path.is_file():
        raise UniswapMissing(f"{path} is missing: run `npm ci` (package.json pins @uniswap/v2-core and v2-periphery)")
    data = json.loads(path.read_text())
    code = data.get("bytecode") or ""
    return {"abi": data["abi"], "bytecode": code if code.startswith("0x") else "0x" + code}


def pair_init_code_hash() -> str:
    return keccak(bytes.fromhex(artifact("pair")["bytecode"][2:])).hex()


def check_init_code_hash() -> None:
    """The router's built-in hash must be the pair bytecode's: else it would compute pair addresses that do not
    exist on a factory deployed from v2-core, and every swap would revert."""
    ours = pair_init_code_hash()
    if ours != ROUTER_INIT_CODE_HASH or ROUTER_INIT_CODE_HASH not in artifact("router")["bytecode"]:
        raise UniswapMissing(f"pair init-code hash {ours} is not the router's {ROUTER_INIT_CODE_HASH}")


def pair_address(factory: str, token_a: str, token_b: str) -> str:
    """CREATE2 address of the pair (as UniswapV2Library.pairFor computes it), with no call to the chain."""
    t0, t1 = sorted_tokens(token_a, token_b)
    salt = keccak(bytes.fromhex(t0[2:]) + bytes.fromhex(t1[2:]))
    raw = keccak(
        b"\xff" + bytes.fromhex(to_checksum_address(factory)[2:]) + salt + bytes.fromhex(ROUTER_INIT_CODE_HASH)
    )
    return to_checksum_address(raw[12:])


def sorted_tokens(token_a: str, token_b: str) -> tuple[str, str]:
    a, b = to_checksum_address(token_a), to_checksum_address(token_b)
    return (a, b) if int(a, 16) < int(b, 16) else (b, a)


async def _deploy(w3: AsyncWeb3, deployer: LocalAccount, name: str, *args: Any) -> str:
    contract = w3.eth.contract(abi=artifact(name)["abi"], bytecode=artifact(name)["bytecode"])
    data = contract.constructor(*args).data_in_transaction
    tx_hash = await send_transaction(w3, deployer, None, bytes.fromhex(data.removeprefix("0x")))
    address = (await w3.eth.get_transaction_receipt(tx_hash))["contractAddress"]
    if address is None:
        raise TransactionReverted(f"deployment of {name} ({tx_hash}) created no contract")
    return to_checksum_address(address)


async def deploy_factory(w3: AsyncWeb3, deployer: LocalAccount) -> str:
    check_init_code_hash()
    return await _deploy(w3, deployer, "factory", deployer.address)


async def deploy_weth(w3: AsyncWeb3, deployer: LocalAccount) -> str:
    return await _deploy(w3, deployer, "weth")


async def deploy_router(w3: AsyncWeb3, deployer: LocalAccount, factory: str, weth: str) -> str:
    return await _deploy(w3, deployer, "router", to_checksum_address(factory), to_checksum_address(weth))


def contract(w3: AsyncWeb3, name: str, address: str):
    return w3.eth.contract(address=to_checksum_address(address), abi=artifact(name)["abi"])


async def send_call(w3: AsyncWeb3, sender: LocalAccount, target: str, fn) -> str:
    """Send a contract function call (built with `contract(...).functions.f(...)`) and wait for success."""
    data = fn._encode_transaction_data()
    return await send_transaction(w3, sender, target, bytes.fromhex(data.removeprefix("0x")))


async def add_liquidity(
    w3: AsyncWeb3, provider: LocalAccount, router: str, token_a: str, amount_a: int, token_b: str, amount_b: int
) -> str:
    """Approve the router for both amounts and add them (creates the pair on first use): the pool's price is
    amount_b / amount_a."""
    for token, amount in ((token_a, amount_a), (token_b, amount_b)):
        await send_call(
            w3, provider, token, contract(w3, "erc20", token).functions.approve(to_checksum_address(router), amount)
        )
    deadline = (await w3.eth.get_block("latest"))["timestamp"] + 600
    fn = contract(w3, "router", router).functions.addLiquidity(
        to_checksum_address(token_a),
        to_checksum_address(token_b),
        amount_a,
        amount_b,
        amount_a,
        amount_b,
        provider.address,
        deadline,
    )
    return await send_call(w3, provider, router, fn)


async def swap_directly(
    w3: AsyncWeb3, trader: LocalAccount, router: str, token_in: str, token_out: str, amount_in: int
) -> str:
    """A plain swap by someone else (tests move the pool's price with it: a sandwich's front leg)."""
    await send_call(
        w3, trader, token_in, contract(w3, "erc20", token_in).functions.approve(to_checksum_address(router), amount_in)
    )
    deadline = (await w3.eth.get_block("latest"))["timestamp"] + 600
    fn = contract(w3, "router", router).functions.swapExactTokensForTokens(
        amount_in, 0, [to_checksum_address(token_in), to_checksum_address(token_out)], trader.address, deadline
    )
    return await send_call(w3, trader, router, fn)


@dataclass(frozen=True)
class PoolQuote:
    """What the chain says now: the router's `getAmountsOut` and the pair's reserves (in, out order)."""

    amount_out: int
    reserve_in: int
    reserve_out: int
    pair: str
    block_number: int
    block_timestamp: int


class NoPool(LookupError):
    """The factory has no pair for these tokens, or it holds no liquidity."""


async def quote(w3: AsyncWeb3, router: str, factory: str, token_in: str, token_out: str, amount_in: int) -> PoolQuote:
    """Quote at one block: the reserves and getAmountsOut read at the same block number."""
    block = await w3.eth.get_block("latest")
    number = block["number"]
    pair = (
        await contract(w3, "factory", factory)
        .functions.getPair(to_checksum_address(token_in), to_checksum_address(token_out))
        .call(block_identifier=number)
    )
    if int(pair, 16) == 0:
        raise NoPool(f"no Uniswap V2 pool for {token_in}/{token_out} on factory {factory}")
    r0, r1, _ = await contract(w3, "pair", pair).functions.getReserves().call(block_identifier=number)
    if r0 == 0 or r1 == 0:
        raise NoPool(f"the pool {pair} holds no liquidity")
    token0, _ = sorted_tokens(token_in, token_out)
    reserve_in, reserve_out = (r0, r1) if token0 == to_checksum_address(token_in) else (r1, r0)
    amounts = (
        await contract(w3, "router", router)
        .functions.getAmountsOut(amount_in, [to_checksum_address(token_in), to_checksum_address(token_out)])
        .call(block_identifier=number)
    )
    return PoolQuote(
        amount_out=int(amounts[-1]),
        reserve_in=int(reserve_in),
        reserve_out=int(reserve_out),
        pair=to_checksum_address(pair),
        block_number=int(number),
        block_timestamp=int(block["timestamp"]),
    )


async def allowance(w3: AsyncWeb3, token: str, owner: str, spender: str) -> int:
    fn = contract(w3, "erc20", token).functions.allowance(to_checksum_address(owner), to_checksum_address(spender))
    return int(await fn.call())


def approve_calldata(spender: str, amount_atomic: int) -> bytes:
    return _APPROVE + abi_encode(["address", "uint256"], [to_checksum_address(spender), amount_atomic])


def swap_calldata(amount_in: int, min_amount_out: int, path: list[str], to: str, deadline: int) -> bytes:
    """`swapExactTokensForTokens(amountIn, amountOutMin, path, to, deadline)`."""
    return _SWAP_EXACT_IN + abi_encode(
        ["uint256", "uint256", "address[]", "address", "uint256"],
        [amount_in, min_amount_out, [to_checksum_address(p) for p in path], to_checksum_address(to), deadline],
    )


@dataclass(frozen=True)
class SwapLegs:
    """What a mined swap moved for `wallet`, read from its receipt: never the quote."""

    amount_in: int  # token_in that left the wallet (Transfer wallet -> pair)
    amount_out: int  # token_out that reached the wallet (Transfer pair -> wallet)
    pair: str | None
    swap_logged: bool  # the pair emitted its Swap event


def _topic_address(topic: Any) -> str:
    raw = topic.hex() if hasattr(topic, "hex") else str(topic)
    return to_checksum_address("0x" + raw.removeprefix("0x")[-40:])


def _hex(value: Any) -> str:
    text = value.hex() if hasattr(value, "hex") else str(value)
    return text if text.startswith("0x") else "0x" + text


def swap_legs(receipt: Any, wallet: str, token_in: str, token_out: str) -> SwapLegs:
    """Sum the receipt's Transfer logs of the two tokens to and from the wallet, and find the Swap event."""
    wallet, token_in, token_out = (to_checksum_address(x) for x in (wallet, token_in, token_out))
    amount_in = amount_out = 0
    pair = None
    swapped = False
    for log in receipt["logs"]:
        topics = [_hex(t) for t in log["topics"]]
        if not topics:
            continue
        address = to_checksum_address(log["address"])
        if topics[0] == SWAP_TOPIC:
            swapped, pair = True, address
        elif topics[0] == TRANSFER_TOPIC and len(topics) == 3:
            (value,) = abi_decode(["uint256"], bytes.fromhex(_hex(log["data"])[2:]))
            sender, receiver = _topic_address(topics[1]), _topic_address(topics[2])
            if address == token_in and sender == wallet:
                amount_in += int(value)
            elif address == token_out and receiver == wallet:
                amount_out += int(value)
    return SwapLegs(amount_in=amount_in, amount_out=amount_out, pair=pair, swap_logged=swapped)
