"""The operation an approval is bound to, and its canonical hash.

Approvers approve a hash, not a description: if anything that changes where money goes or how much changes, the hash
changes and every earlier approval becomes stale. The hash is keccak-256 (the EVM's hash, so it can later be
checked on chain) over a canonical JSON body: sorted keys, no whitespace, checksummed addresses, the amount as a
decimal string (JSON numbers lose precision above 2**53 in many languages), behind a versioned domain prefix.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field, field_validator

from paygent.domain.addresses import parse_address
from paygent.domain.money import MAX_ATOMIC

HASH_DOMAIN = b"paygent.operation.v1\n"
EDITABLE_FIELDS = ("amount_atomic", "to", "memo")


class SwapTerms(BaseModel):
    """A swap's terms (only swaps carry them; transfers' operations and hashes are unchanged). The hash covers the
    kind, the two assets, the input amount (the operation's), the minimum output, the maximum price impact and
    the router; the quote and the deadline are shown to approvers but left out (a re-quote may refresh them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    asset_out: str = Field(min_length=1)
    token_out: str
    min_amount_out: int = Field(gt=0, le=MAX_ATOMIC)
    max_price_impact_bps: int = Field(ge=0, le=10_000)
    router: str
    # shown, not hashed
    quoted_amount_out: int = Field(default=0, ge=0, le=MAX_ATOMIC)
    price_impact_bps: int = Field(default=0, ge=0, le=10_000)

    @field_validator("token_out", "router")
    @classmethod
    def _checksummed(cls, value: str, info: Any) -> str:
        return parse_address(value, field=info.field_name)


class Operation(BaseModel):
    """One money movement: exactly what approvers see and what executes after approval."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain_id: int = Field(gt=0)
    wallet_id: str = Field(min_length=1)
    asset: str = Field(min_length=1, description="token symbol, e.g. USDC")
    token_address: str
    to: str
    amount_atomic: int = Field(gt=0, le=MAX_ATOMIC)
    payment_id: str = Field(min_length=1)
    memo: str | None = Field(default=None, max_length=1000)
    swap: SwapTerms | None = None  # a swap (kind=swap): `asset`/`amount_atomic` are its input

    @field_validator("token_address", "to")
    @classmethod
    def _checksummed(cls, value: str, info: Any) -> str:
        # Stored checksummed so that the same address in another case is the same operation (and the same hash).
        return parse_address(value, field=info.field_name)

    @field_validator("wallet_id", "payment_id")
    @classmethod
    def _canonical_id(cls, value: str) -> str:
        # A UUID written in upper case or without dashes is the same wallet or payment.
        text = value.strip()
        try:
            return str(uuid.UUID(text))
        except ValueError:
            return text


def canonical_operation(op: Operation) -> bytes:
    body: dict[str, Any] = {
        "chain_id": op.chain_id,
        "wallet_id": op.wallet_id,
        "asset": op.asset,
        "token_address": op.token_address,
        "to": op.to,
        "amount_atomic": str(op.amount_atomic),
        "payment_id": op.payment_id,
        "memo": op.memo,
    }
    if op.swap is not None:
        body |= {
            "kind": "swap",
            "asset_out": op.swap.asset_out,
            "token_out": op.swap.token_out,
            "min_amount_out": str(op.swap.min_amount_out),
            "max_price_impact_bps": op.swap.max_price_impact_bps,
            "router": op.swap.router,
        }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def operation_hash(op: Operation) -> str:
    """'0x' + 64 hex digits; equal for equal operations, different when any field differs."""
    return "0x" + keccak(HASH_DOMAIN + canonical_operation(op)).hex()
