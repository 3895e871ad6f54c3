"""Reading a wallet's token movements from the chain: `Transfer` and `AuthorizationUsed` logs over block ranges.

Logs are filtered by the wallet's address in an indexed topic, so a node answers from its log index: one
`eth_getLogs` per direction per range, whatever the chain's history. Callers pass closed ranges no wider than
their batch size (some nodes cap a query at a few thousand blocks).
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import to_checksum_address
from web3 import AsyncWeb3
from web3.types import FilterParams

TRANSFER_TOPIC = "0x" + AsyncWeb3.keccak(text="Transfer(address,address,uint256)").hex().removeprefix("0x")
AUTHORIZATION_USED_TOPIC = "0x" + AsyncWeb3.keccak(text="AuthorizationUsed(address,bytes32)").hex().removeprefix("0x")


@dataclass(frozen=True)
class TokenTransfer:
    block_number: int
    tx_hash: str  # 0x-prefixed, lower case
    log_index: int
    sender: str
    receiver: str
    amount_atomic: int


def _topic(address: str) -> str:
    return "0x" + "0" * 24 + address.lower().removeprefix("0x")


def _address(topic) -> str:
    raw = topic.hex() if hasattr(topic, "hex") else str(topic)
    return to_checksum_address("0x" + raw.removeprefix("0x")[-40:])


def _hex(value) -> str:
    text = value.hex() if hasattr(value, "hex") else str(value)
    return (text if text.startswith("0x") else "0x" + text).lower()


async def transfers(w3: AsyncWeb3, token: str, wallet: str, from_block: int, to_block: int) -> list[TokenTransfer]:
    """Every Transfer out of and into `wallet` in [from_block, to_block], in chain order."""
    base: FilterParams = {"fromBlock": from_block, "toBlock": to_block, "address": to_checksum_address(token)}
    out = await w3.eth.get_logs({**base, "topics": [TRANSFER_TOPIC, _topic(wallet)]})
    into = await w3.eth.get_logs({**base, "topics": [TRANSFER_TOPIC, None, _topic(wallet)]})
    seen: dict[tuple[str, int], TokenTransfer] = {}
    for log in [*out, *into]:  # a transfer to oneself is in both answers: keep it once
        t = TokenTransfer(
            block_number=log["blockNumber"],
            tx_hash=_hex(log["transactionHash"]),
            log_index=log["logIndex"],
            sender=_address(log["topics"][1]),
            receiver=_address(log["topics"][2]),
            amount_atomic=int(_hex(log["data"]), 16),
        )
        seen[(t.tx_hash, t.log_index)] = t
    return sorted(seen.values(), key=lambda t: (t.block_number, t.log_index))


async def authorizations_used(
    w3: AsyncWeb3, token: str, authorizer: str, from_block: int, to_block: int
) -> dict[str, str]:
    """{transaction hash: authorization nonce (0x hex)} for the EIP-3009 authorizations `authorizer` signed
    that were consumed in [from_block, to_block]: how an x402 settlement is told apart from a stray transfer."""
    logs = await w3.eth.get_logs(
        {
            "fromBlock": from_block,
            "toBlock": to_block,
            "address": to_checksum_address(token),
            "topics": [AUTHORIZATION_USED_TOPIC, _topic(authorizer)],
        }
    )
    found: dict[str, str] = {}
    for log in logs:
        found.setdefault(_hex(log["transactionHash"]), _hex(log["topics"][2]))
    return found
