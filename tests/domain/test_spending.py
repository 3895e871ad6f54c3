from hypothesis import given
from hypothesis import strategies as st

from paygent.domain.money import Unit
from paygent.domain.spending import (
    SpendingPolicy,
    VelocityLimit,
    check_static,
    check_velocity,
    describe_policy,
    for_asset,
    policy_view,
)

A = "0x52908400098527886E0F7030069857D2E4169EE7"
B = "0x8617E340B3D01FA5F11F306F4090FD50E238070D".lower()


def test_static_rules_name_the_limit():
    policy = SpendingPolicy(per_payment_cap_atomic=100, denylist=[B], allowed_assets=["USDC"])
    assert check_static(policy, to=A, asset="USDC", amount_atomic=100) is None
    assert check_static(policy, to=A, asset="USDC", amount_atomic=101).limit == "per_payment_cap"
    assert check_static(policy, to=A, asset="DAI", amount_atomic=1).limit == "asset"
    assert (
        check_static(
            policy, to=SpendingPolicy.model_validate({"denylist": [B]}).denylist[0], asset="USDC", amount_atomic=1
        ).limit
        == "denylist"
    )
    allow = SpendingPolicy(allowlist=[A])
    assert check_static(allow, to=A, asset="USDC", amount_atomic=1) is None
    assert check_static(allow, to=policy.denylist[0], asset="USDC", amount_atomic=1).limit == "allowlist"


@given(used=st.integers(0, 10**9), amount=st.integers(1, 10**9), limit=st.integers(1, 2 * 10**9))
def test_velocity_refuses_exactly_when_the_sum_exceeds(used, amount, limit):
    policy = SpendingPolicy(velocity=[VelocityLimit(name="daily", window_seconds=86400, max_atomic=limit)])
    refusal = check_velocity(policy, {"daily": used}, amount)
    assert (refusal is not None) == (used + amount > limit)
    if refusal:
        assert refusal.limit == "velocity:daily"


def test_refusals_say_token_units_and_keep_the_atomic_figures():
    usdc = Unit(6, "USDC")
    policy = SpendingPolicy(
        asset="usdc",
        per_payment_cap_atomic=5_000_000,
        velocity=[VelocityLimit(name="daily", window_seconds=86400, max_atomic=8 * 10**6)],
    )
    assert policy.asset == "USDC"  # one spelling
    cap = check_static(policy, to=A, asset="USDC", amount_atomic=7_000_000, unit=usdc)
    assert cap is not None and cap.message == "7 USDC exceeds the per-payment cap of 5 USDC"
    assert cap.limit_atomic == 5_000_000
    daily = check_velocity(policy, {"daily": 3_000_000}, 5_500_000, usdc)
    assert daily is not None and daily.used_atomic == 3_000_000 and daily.limit_atomic == 8_000_000
    assert (
        daily.message
        == "5.5 USDC would exceed the daily limit of 8 USDC per 24 hours: 3 USDC already used, 5 USDC left"
    )
    view = policy_view(policy, lambda symbol: usdc)
    assert view["per_payment_cap"] == "5" and view["velocity"][0]["max"] == "8"
    assert view["asset"] == "USDC" and view["velocity"][0]["asset"] == "USDC"
    assert (
        view["summary"]
        == describe_policy(policy, lambda symbol: usdc)
        == "at most 5 USDC a payment; at most 8 USDC per 24 hours (daily)"
    )
    assert describe_policy(SpendingPolicy(), lambda symbol: usdc) == "no limits"


def test_a_rule_is_for_its_asset_only():
    policy = SpendingPolicy(
        asset="USDC",
        per_payment_cap_atomic=5,
        velocity=[
            VelocityLimit(name="daily", window_seconds=86400, max_atomic=10),
            VelocityLimit(name="eur", window_seconds=3600, max_atomic=20, asset="eurc"),
        ],
    )
    usdc, eurc, dai = for_asset(policy, "USDC"), for_asset(policy, "eurc"), for_asset(policy, "DAI")
    assert (usdc.per_payment_cap_atomic, [v.name for v in usdc.velocity]) == (5, ["daily"])
    assert (eurc.per_payment_cap_atomic, [v.name for v in eurc.velocity]) == (None, ["eur"])
    assert (dai.per_payment_cap_atomic, dai.velocity) == (None, [])
    assert check_static(policy, to=A, asset="EURC", amount_atomic=6) is None  # the USDC cap
    assert check_static(policy, to=A, asset="USDC", amount_atomic=6).limit == "per_payment_cap"
    # a policy without an asset (stored before assets): each rule holds for every asset, each on its own
    legacy = SpendingPolicy(
        per_payment_cap_atomic=5, velocity=[VelocityLimit(name="d", window_seconds=1, max_atomic=9)]
    )
    for asset in ("USDC", "EURC"):
        assert for_asset(legacy, asset) == legacy
        assert check_static(legacy, to=A, asset=asset, amount_atomic=6).limit == "per_payment_cap"
    assert describe_policy(legacy, lambda s: Unit(6, s or "USDC")) == (
        "at most 0.000005 USDC of each asset a payment; at most 0.000009 USDC of each asset per second (d)"
    )
    # allowed assets: one spelling too
    assert check_static(SpendingPolicy(allowed_assets=["eurc"]), to=A, asset="EURC", amount_atomic=1) is None
