from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paygent.domain.errors import InvalidInput
from paygent.domain.money import Unit, format_amount, format_money, format_window, parse_amount


@pytest.mark.parametrize(
    "text,atomic", [("1", 1_000_000), ("12.5", 12_500_000), ("0.000001", 1), ("5000", 5_000_000_000)]
)
def test_parse_amount(text, atomic):
    assert parse_amount(text, 6) == atomic


@pytest.mark.parametrize(
    "bad,reason",
    [
        ("-1", "positive"),
        ("0", "greater than zero"),
        ("0.0000001", "more than 6 decimal places"),
        ("abc", "not a decimal"),
        ("1e5", "not a decimal"),
        ("", "not a decimal"),
        (" 1", "not a decimal"),
        ("1.", "not a decimal"),
        (1.5, "decimal string"),
        (5, "decimal string"),
        (None, "decimal string"),
        ("\uff11", "not a decimal"),  # fullwidth 1
        ("\u0661", "not a decimal"),  # Arabic-Indic 1
        ("1.\u0665", "not a decimal"),
        ("1\n", "not a decimal"),
        ("1" * 5000, "too large"),
        ("0" * 5000 + "1" * 79, "too large"),
        (str(2**256), "too large"),
    ],
)
def test_parse_amount_refuses(bad, reason):
    with pytest.raises(InvalidInput) as exc:
        parse_amount(bad, 6)
    assert exc.value.field == "amount"
    assert reason in exc.value.reason


def test_a_number_is_refused_with_its_string_form():
    with pytest.raises(InvalidInput) as exc:
        parse_amount(0.3, 6)
    assert exc.value.reason.startswith('send the amount as a decimal string, "0.3", not as the number 0.3')
    with pytest.raises(InvalidInput) as exc:
        parse_amount(1e-7, 6, field="max_amount")
    assert exc.value.field == "max_amount" and '"0.0000001"' in exc.value.reason


def test_the_largest_token_amount_is_accepted():
    assert parse_amount(str(2**256 - 1), 0) == 2**256 - 1
    assert parse_amount("0" * 5000 + "1", 6) == 10**6


@given(st.integers(min_value=1, max_value=10**30), st.integers(min_value=0, max_value=18))
def test_format_then_parse_round_trips(atomic, decimals):
    assert parse_amount(format_amount(atomic, decimals), decimals) == atomic
    with localcontext() as ctx:
        ctx.prec = 100
        assert Decimal(format_amount(atomic, decimals)) == Decimal(atomic).scaleb(-decimals)


def test_amounts_read_in_token_units_exactly():
    assert format_money(7_000_000, 6, "USDC") == "7 USDC"
    assert format_money(1, 6, "USDC") == "0.000001 USDC"
    assert format_money(2**256 - 1, 6, "USDC").startswith(
        "115792089237316195423570985008687907853269984665640564039457"
    )
    assert Unit(6, "USDC").text(102_000_000) == "102 USDC"
    assert [format_window(s) for s in (1, 60, 90, 3600, 7200, 86400, 604800)] == [
        "second",
        "minute",
        "90 seconds",
        "hour",
        "2 hours",
        "24 hours",
        "7 days",
    ]
