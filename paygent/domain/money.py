"""Amounts: decimal strings in token units at the edges, integers in atomic units everywhere else."""

from __future__ import annotations

from paygent.domain.errors import InvalidInput

MAX_ATOMIC = 2**256 - 1


def parse_amount(text: object, decimals: int, *, field: str = "amount") -> int:
    """'12.5' with 6 decimals -> 12_500_000. Refuses floats, signs, zero, excess precision, junk."""
    if not isinstance(text, str):
        raise InvalidInput(
            field, 'must be a decimal string such as "12.50" (numbers are refused to avoid float rounding)'
        )
    s = text.strip()
    if not s or s != text or not all(c.isdigit() or c == "." for c in s) or s.count(".") > 1:
        if s.startswith("-"):
            raise InvalidInput(field, "must be positive")
        raise InvalidInput(field, f"{text!r} is not a decimal number")
    if s.startswith(".") or s.endswith("."):
        raise InvalidInput(field, f"{text!r} is not a decimal number")
    whole, _, frac = s.partition(".")
    if len(frac) > decimals:
        raise InvalidInput(field, f"has more than {decimals} decimal places")
    # integer arithmetic on the digits: exact at any size (Decimal would round past 28 digits)
    atomic = int(whole) * 10**decimals + int(frac.ljust(decimals, "0") or "0")
    if atomic == 0:
        raise InvalidInput(field, "must be greater than zero")
    if atomic > MAX_ATOMIC:
        raise InvalidInput(field, "is too large")
    return atomic


def format_amount(atomic: int, decimals: int) -> str:
    """12_500_000 with 6 decimals -> '12.5' (no trailing zeros, never exponent notation)."""
    sign = "-" if atomic < 0 else ""
    whole, frac = divmod(abs(atomic), 10**decimals)
    frac_text = str(frac).rjust(decimals, "0").rstrip("0") if decimals else ""
    return f"{sign}{whole}.{frac_text}" if frac_text else f"{sign}{whole}"
