"""Why a mined transaction reverted: replay its call on the state before its block and read the message."""

from __future__ import annotations

from eth_typing import HexStr
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError
from web3.types import Wei


async def revert_reason(w3: AsyncWeb3, tx_hash: str, block_number: int) -> str:
    """The revert message (e.g. `UniswapV2Router: EXPIRED`), or what is known when the node cannot say."""
    tx = await w3.eth.get_transaction(HexStr(tx_hash))
    try:
        await w3.eth.call(
            {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": Wei(0)},
            block_identifier=block_number - 1,
        )
    except ContractLogicError as err:
        return str(err.message or err)
    except Exception as err:  # the node may not keep old state; say what we know
        return f"reverted (reason unavailable: {type(err).__name__})"
    return "reverted"
