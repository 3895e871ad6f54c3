"""What a payment request must be before anything is recorded, checked one way for every door.

The HTTP API and the MCP tools (api/payment_service.py) and agent runs (activities/agent_payments.py) all call
`check_payment_input` once they know the paying wallet, and record only what it returns. A refusal is an
`InvalidInput` naming the field; nothing has been recorded, started or signed by then.

Rules, in one place:
- `asset`: a symbol of the asset registry on this server's chain (paygent/assets.py: the configured token and
  the other configured tokens), in any case (`eurc` is EURC); recorded as the registry spells it.
- `amount` / `max_amount`: a decimal string of ASCII digits in token units (paygent/domain/money.py); a JSON
  number is refused (`DecimalText` says how to write it), never read through a float.
- `to`: a valid address that is neither the zero address, nor the paying wallet itself (a payment to oneself
  books an outgoing leg with no incoming one), nor the token contract (tokens sent there are usually lost).
- `url` (x402): allowed by the egress policy (paygent/egress.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from paygent.domain.addresses import parse_address
from paygent.domain.errors import InvalidInput
from paygent.domain.money import number_refusal, parse_amount
from paygent.domain.payment import ZERO_ADDRESS, PaymentKind
from paygent.domain.text import SafeText
from paygent.egress import require_allowed
from paygent.settings import Settings


class AssetUnavailable(InvalidInput):
    """No token is configured on this server: the server's state, not the caller's mistake (HTTP answers 503)."""


def _refuse_numbers(value: Any) -> Any:
    reason = number_refusal(value)
    if reason is not None:
        raise PydanticCustomError("amount_number", reason)
    return value


# The type of every amount field at the edges: a string in the schema; a JSON number gets `number_refusal`.
DecimalText = Annotated[SafeText, BeforeValidator(_refuse_numbers)]


@dataclass(frozen=True)
class PaymentFields:
    """What a caller asked for, as text from the edge. kind "transfer": `to` and `amount`; kind "x402": `url`
    and `max_amount` (the server's 402 answer names price and recipient)."""

    kind: PaymentKind
    asset: str
    to: str | None = None
    amount: object = None
    url: str | None = None
    max_amount: object = None


@dataclass(frozen=True)
class PaymentInput:
    """A payment request that passed every check: what is recorded."""

    kind: PaymentKind
    asset: str  # the registry's symbol
    token_address: str
    decimals: int
    to: str  # checksummed; ZERO_ADDRESS for x402 until the server's 402 answer names the recipient
    amount_atomic: int  # for x402, the cap
    url: str | None


def resolve_asset(settings: Settings, symbol: object) -> tuple[str, str, int]:
    """(symbol as the registry spells it, token address, decimals) of an asset on this server's chain."""
    registry = settings.asset_registry()
    known = registry.symbols(settings.chain_id)
    if not known:
        raise AssetUnavailable("asset", "no token is configured on this server")
    asset = registry.get(settings.chain_id, symbol)
    if asset is None:
        shown = repr(symbol) if isinstance(symbol, str) else "(not a string)"
        raise InvalidInput("asset", f"unknown asset {shown}; known: {', '.join(known)}")
    return asset.symbol, asset.address, asset.decimals


async def check_payment_input(settings: Settings, fields: PaymentFields, *, payer: str) -> PaymentInput:
    """The checked payment, or `InvalidInput` naming the first field that is wrong. `payer`: the paying wallet's
    address (a payment to it is refused)."""
    symbol, token_address, decimals = resolve_asset(settings, fields.asset)
    if fields.kind == PaymentKind.x402:
        cap = parse_amount(fields.max_amount, decimals, field="max_amount")
        if not fields.url:
            raise InvalidInput("url", "required for an x402 payment")
        await require_allowed(settings, fields.url, field="url")
        return PaymentInput(fields.kind, symbol, token_address, decimals, ZERO_ADDRESS, cap, fields.url)
    amount = parse_amount(fields.amount, decimals)
    to = check_recipient(fields.to, payer=payer, token_address=token_address)
    return PaymentInput(fields.kind, symbol, token_address, decimals, to, amount, None)


def check_recipient(text: object, *, payer: str, token_address: str) -> str:
    """The checksummed recipient, or `InvalidInput` naming `to` (also used when an edit changes the recipient)."""
    to = parse_address(text, field="to")
    if to.lower() == payer.lower():
        raise InvalidInput("to", "is the paying wallet's own address (a payment to oneself moves nothing)")
    if to.lower() == token_address.lower():
        raise InvalidInput("to", "is the token contract's address (tokens sent there are lost)")
    return to
