"""Amounts: decimal strings in token units at the edges, integers in atomic units everywhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from paygent.domain.errors import InvalidInput

MAX_ATOMIC = 2**256 - 1
# ASCII digits only: str.isdigit, int() and Decimal() also take fullwidth or Arabic-Indic digits
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


def number_refusal(value: object) -> str | None:
    """The one sentence every door answers an amount sent as a JSON number with, or None for anything else:
    a number is never read (a float may already have rounded it), and the answer shows its string form."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    text = format(Decimal(str(value)) if isinstance(value, float) else Decimal(value), "f")
    return f'send the amount as a decimal string, "{text}", not as the number {text} (numbers may be rounded)'


def parse_amount(text: object, decimals: int, *, field: str = "amount") -> int:
    """'12.5' with 6 decimals -> 12_500_000. Refuses floats, signs, zero, excess precision, junk."""
    if not isinstance(text, str):
        raise InvalidInput(field, number_refusal(text) or 'must be a decimal string such as "12.50"')
    if not _DECIMAL.fullmatch(text):
        if text.strip().startswith("-"):
            raise InvalidInput(field, "must be positive")
        raise InvalidInput(field, f'{text!r} is not a decimal number (ASCII digits and one point, e.g. "12.50")')
    whole, _, frac = text.partition(".")
    if len(frac) > decimals:
        raise InvalidInput(field, f"has more than {decimals} decimal places")
    whole = whole.lstrip("0") or "0"
    if len(whole) > len(str(MAX_ATOMIC)):  # before int(): Python refuses to read over 4300 digits
        raise InvalidInput(field, "is too large")
    # integer arithmetic on the digits: exact at any size (Decimal would round past 28 digits)
    atomic = int(whole) * 10**decimals + int(frac.ljust(decimals, "0") or "0")
    if atomic == 0:
        raise InvalidInput(field, "must be greater than zero")
    if atomic > MAX_ATOMIC:
        raise InvalidInput(field, "is too large")
    return atomic


def norm_symbol(symbol: str) -> str:
    """The one spelling of an asset's symbol everywhere (registry, payments, limits, ledger): upper-case
    (`eurc` -> `EURC`). Nothing else is forgiven: `eurc ` names no asset."""
    return symbol.upper()


def format_amount(atomic: int, decimals: int) -> str:
    """12_500_000 with 6 decimals -> '12.5' (no trailing zeros, never exponent notation)."""
    sign = "-" if atomic < 0 else ""
    whole, frac = divmod(abs(atomic), 10**decimals)
    frac_text = str(frac).rjust(decimals, "0").rstrip("0") if decimals else ""
    return f"{sign}{whole}.{frac_text}" if frac_text else f"{sign}{whole}"


@dataclass(frozen=True)
class Unit:
    """How to read a token's atomic amounts: its decimals and symbol ("USDC", 6)."""

    decimals: int
    symbol: str

    def text(self, atomic: int) -> str:
        return format_money(atomic, self.decimals, self.symbol)


ATOMIC = Unit(0, "atomic units")  # when the token is unknown: still exact, and says what it is


def format_money(atomic: int, decimals: int, symbol: str) -> str:
    """7_000_000 with 6 decimals and USDC -> '7 USDC': how every message a person or a model reads says an
    amount (JSON keeps the atomic figure beside it). Exact at any size: the digits of format_amount."""
    return f"{format_amount(atomic, decimals)} {symbol}"


def format_window(seconds: int) -> str:
    """A rolling window as a person says it: 86400 -> '24 hours', 3600 -> 'hour', 604800 -> '7 days'."""
    for size, name in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % size == 0 and (name != "day" or seconds > 86400):
            n = seconds // size
            return name if n == 1 else f"{n} {name}s"
    return f"{seconds} seconds"  # not reached (every int is a multiple of 1); mypy wants a return
