from hypothesis import given
from hypothesis import strategies as st

from paygent.domain.spending import SpendingPolicy, VelocityLimit, check_static, check_velocity

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
