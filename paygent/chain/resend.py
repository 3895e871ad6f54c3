"""Re-sending stored signed transactions and finding which of a payment's attempts landed.

Shared by the payment's receipt wait (activities/chain.py) and the reconciler, which takes over a payment
whose receipt wait gave up: both re-send the very bytes that were signed, never a new transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound, Web3RPCError


async def send_stored(w3: AsyncWeb3, raw: bytes) -> None:
    """Send stored bytes; 'already known', or a nonce used by one of this payment's own attempts, is fine."""
    try:
        await w3.eth.send_raw_transaction(raw)
    except (Web3RPCError, ValueError) as err:
        text = str(err).lower()
        if "already known" in text or "already imported" in text or "underpriced" in text:
            return  # known, or a higher-fee replacement of it is already pending
        if "nonce too low" in text:
            return  # the nonce is used: the receipt check decides whether by this payment or another
        raise


async def first_landed(w3: AsyncWeb3, attempts: Sequence):
    """(attempt, receipt) of the attempt that was mined, or (None, None). Attempts carry `tx_hash`."""
    for attempt in attempts:
        try:
            return attempt, await w3.eth.get_transaction_receipt(attempt["tx_hash"])
        except TransactionNotFound:
            continue
    return None, None
