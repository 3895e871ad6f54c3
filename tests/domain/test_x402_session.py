"""The session's pure rules: origins, what a request may start with, and what price may be paid."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paygent.domain.errors import InvalidInput
from paygent.domain.x402_session import (
    MAX_BODY_BYTES,
    RefusalReason,
    SessionStatus,
    ceiling,
    fetch_refusal,
    origin,
    parse_origins,
    price_refusal,
    size_refusal,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ORIGINS = ["https://api.example.com", "http://127.0.0.1:8402"]


def _refusal(**overrides):
    args = dict(
        status=SessionStatus.active,
        expires_at=NOW + timedelta(minutes=5),
        now=NOW,
        origins=ORIGINS,
        url="https://api.example.com/weather?q=1",
        remaining=50_000,
        max_price=20_000,
        max_amount=None,
    )
    return fetch_refusal(**(args | overrides))


def test_origins_are_normalised_and_nothing_but_an_origin_is_accepted():
    assert parse_origins(["HTTPS://API.example.com:443/", "http://127.0.0.1:8402"]) == ORIGINS
    assert origin("https://api.example.com:8443/x") == "https://api.example.com:8443"
    for bad in (["https://api.example.com/path"], ["ftp://x"], ["https://a.com?q=1"], [], ["https://u:p@a.com"]):
        with pytest.raises(InvalidInput) as err:
            parse_origins(bad)
        assert err.value.field == "origins"


def test_a_request_may_start_only_in_an_active_unexpired_session_at_an_allowed_origin_within_budget():
    assert _refusal() is None
    assert _refusal(url="https://api.example.com.evil.net/x").reason == RefusalReason.origin_not_allowed
    assert _refusal(url="http://api.example.com/x").reason == RefusalReason.origin_not_allowed  # another scheme
    assert _refusal(now=NOW + timedelta(minutes=5)).reason == RefusalReason.session_expired
    assert _refusal(status=SessionStatus.expired).reason == RefusalReason.session_expired
    assert _refusal(status=SessionStatus.closed).reason == RefusalReason.session_not_active
    assert _refusal(status=SessionStatus.awaiting_approval).reason == RefusalReason.session_not_active
    assert _refusal(max_amount=30_000).reason == RefusalReason.over_ceiling
    assert _refusal(remaining=0).reason == RefusalReason.over_budget
    assert _refusal(remaining=10_000, max_amount=15_000).reason == RefusalReason.over_budget


def test_the_price_is_checked_against_max_amount_ceiling_and_what_is_left():
    assert price_refusal(10_000, remaining=50_000, max_price=20_000, max_amount=None) is None
    assert price_refusal(25_000, remaining=50_000, max_price=20_000, max_amount=None).reason == "over_ceiling"
    assert price_refusal(15_000, remaining=50_000, max_price=20_000, max_amount=10_000).reason == "over_ceiling"
    assert price_refusal(15_000, remaining=10_000, max_price=None, max_amount=None).reason == "over_budget"
    assert size_refusal(MAX_BODY_BYTES) is None and size_refusal(None) is None
    assert size_refusal(MAX_BODY_BYTES + 1).reason == RefusalReason.body_too_large


@given(
    price=st.integers(1, 10**9),
    remaining=st.integers(0, 10**9),
    max_price=st.none() | st.integers(1, 10**9),
    max_amount=st.none() | st.integers(1, 10**9),
)
def test_a_price_is_payable_exactly_when_it_is_within_the_ceiling(price, remaining, max_price, max_amount):
    payable = price_refusal(price, remaining=remaining, max_price=max_price, max_amount=max_amount) is None
    assert payable == (price <= ceiling(remaining=remaining, max_price=max_price, max_amount=max_amount))
