"""The contracts `paygent stack up` deploys, and the one rule for keeping them (every contract the stack deploys,
today the token, later the swap router and pools, goes through `ensure_contract`).

`up` runs again on a live stack (the runbook brings a stopped piece back that way), so a contract recorded in
dev.json is replaced only when the chain itself says it is gone or is something else:

- no code at the recorded address (a fresh chain), or a contract there that answers its identity calls
  (`symbol()`, `decimals()`) with other values or has no such functions: a deployment may follow;
- an identity call that fails or does not answer in time stops `up` with the reason; nothing is deployed (a slow
  node is not a missing token: redeploying would move every balance and payment to a new address);
- never while payments are in flight: they were signed against the recorded contract.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from eth_utils import to_checksum_address
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from paygent.stack.processes import StackError

CALL_TIMEOUT_SECONDS = 5.0
CALL_ATTEMPTS = 3
# The chain's definite "no" to an identity call: a revert, or no return data (no such function)
DEFINITE_NO = (ContractLogicError, BadFunctionCallOutput)


@dataclass(frozen=True)
class ContractPiece:
    name: str  # as dev.json and `up` name it: "token"
    abi: list
    identity: dict[str, Any]  # view functions without arguments -> the answer that makes the contract ours
    deploy: Callable[[Any], Awaitable[str]]  # AsyncWeb3 -> the new contract's address


class Found(StrEnum):
    ours = "ours"
    other = "other"  # answers its identity calls with other values
    no_code = "no_code"


async def identify(w3, piece: ContractPiece, address: str) -> Found:
    """What the chain says is at `address`; StackError when it does not say (a failing or slow call)."""
    checksummed = to_checksum_address(address)
    code = await _ask(piece, address, "eth_getCode", lambda: w3.eth.get_code(checksummed))
    if len(code) == 0:
        return Found.no_code
    contract = w3.eth.contract(address=checksummed, abi=piece.abi)
    for function, expected in piece.identity.items():
        read = getattr(contract.functions, function)
        try:
            answer = await _ask(piece, address, f"{function}()", read().call)
        except DEFINITE_NO:  # the contract has no such function (it reverted or returned nothing): not ours
            return Found.other
        if answer != expected:
            return Found.other
    return Found.ours


async def ensure_contract(
    w3, piece: ContractPiece, recorded: str | None, *, in_flight: Callable[[], Awaitable[int]]
) -> tuple[str, str]:
    """(address, what happened: `reused` or `deployed`). Raises StackError rather than replace a contract the
    chain did not prove gone, or while payments are in flight."""
    if recorded:
        found = await identify(w3, piece, recorded)
        if found == Found.ours:
            return recorded, "reused"
        why = (
            f"no code at its recorded address {recorded} (a fresh chain?)"
            if found == Found.no_code
            else f"the contract at {recorded} is not ours (it answers {', '.join(piece.identity)} differently)"
        )
        waiting = await in_flight()
        if waiting:
            raise StackError(
                f"{piece.name}: {why}, and {waiting} payment(s) are in flight against it: not redeploying. Restore "
                "the chain's state (.paygent/anvil-state.json) or let those payments end first."
            )
    try:
        return await piece.deploy(w3), "deployed"
    except Exception as exc:
        raise StackError(f"{piece.name}: could not deploy: {type(exc).__name__}: {exc}") from exc


async def _ask(piece: ContractPiece, address: str, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
    """A read from the chain, retried; StackError naming the contract and the call when it keeps failing."""
    last: BaseException | None = None
    for _ in range(CALL_ATTEMPTS):
        try:
            return await asyncio.wait_for(call(), CALL_TIMEOUT_SECONDS)
        except TimeoutError as exc:
            last = exc
        except DEFINITE_NO:
            raise
        except Exception as exc:  # the node refused or broke the call: say which, never guess "not ours"
            last = exc
            await asyncio.sleep(0.5)
    reason = f"no answer within {CALL_TIMEOUT_SECONDS:g}s" if isinstance(last, TimeoutError) else repr(last)
    raise StackError(
        f"{piece.name}: the chain did not answer {what} for {address} ({reason}, {CALL_ATTEMPTS} attempts): "
        "nothing was redeployed and dev.json is unchanged. Check the node, then run `paygent stack up` again."
    )
