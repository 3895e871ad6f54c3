"""Tier choice is the one rule every approval depends on: tested at the boundaries and by properties."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from paygent.domain.approval_policy import (
    ApprovalPolicy,
    Tier,
    choose_tier,
    default_dev_policy,
    needs_approval,
    tier_index,
)

UNIT = 10**6


@pytest.mark.parametrize(
    "tokens_atomic,required,timelock",
    [
        (1, 0, 0),
        (100 * UNIT, 0, 0),
        (100 * UNIT + 1, 1, 0),
        (1_000 * UNIT, 1, 0),
        (1_000 * UNIT + 1, 2, 3600),
        (10_000 * UNIT, 2, 3600),
        (10_000 * UNIT + 1, 3, 3600),
        (10**40, 3, 3600),
    ],
)
def test_default_dev_policy_tiers(tokens_atomic, required, timelock):
    tier = choose_tier(default_dev_policy(), tokens_atomic)
    assert (tier.approvals_required, tier.timelock_seconds) == (required, timelock)
    assert tier.approval_timeout_seconds == 24 * 3600
    if required:
        assert tier.approvers == ["bob", "carol", "dave"]


def test_default_policy_scales_with_decimals():
    assert choose_tier(default_dev_policy(18), 5_000 * 10**18).approvals_required == 2
    assert not needs_approval(default_dev_policy(), 50 * UNIT)
    assert needs_approval(default_dev_policy(), 500 * UNIT)


@pytest.mark.parametrize(
    "tiers,message",
    [
        ([Tier(max_amount_atomic=10, approvals_required=0)], "last tier must be unbounded"),
        ([Tier(approvals_required=0), Tier(approvals_required=0)], "only the last tier may be unbounded"),
        (
            [
                Tier(max_amount_atomic=10, approvals_required=0),
                Tier(max_amount_atomic=10, approvals_required=0),
                Tier(approvals_required=0),
            ],
            "strictly ascending",
        ),
        (
            [
                Tier(max_amount_atomic=20, approvals_required=0),
                Tier(max_amount_atomic=10, approvals_required=0),
                Tier(approvals_required=0),
            ],
            "strictly ascending",
        ),
        ([], "at least 1"),
    ],
)
def test_policy_refuses_bad_tiers(tiers, message):
    with pytest.raises(ValidationError, match=message):
        ApprovalPolicy(tiers=tiers)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"approvals_required": 2, "approvers": ["bob"]}, "needs 2 approvals but lists only 1"),
        ({"approvals_required": 1, "approvers": ["bob", "bob"]}, "distinct"),
        ({"approvals_required": 1, "approvers": [" "]}, "must not be empty"),
        ({"approvals_required": -1}, "greater than or equal to 0"),
        ({"approvals_required": 0, "approval_timeout_seconds": 0}, "greater than 0"),
    ],
)
def test_tier_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        Tier(**kwargs)


def test_amount_must_be_positive():
    with pytest.raises(ValueError):
        choose_tier(default_dev_policy(), 0)


def test_policy_round_trips_through_json():
    policy = default_dev_policy()
    assert ApprovalPolicy.model_validate_json(policy.model_dump_json()) == policy


@st.composite
def policies(draw):
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=10**30), max_size=6)))
    tiers = []
    for bound in [*bounds, None]:
        names = draw(st.lists(st.sampled_from(["ann", "bob", "carol", "dave", "erin"]), unique=True))
        tiers.append(
            Tier(max_amount_atomic=bound, approvals_required=draw(st.integers(0, len(names))), approvers=names)
        )
    return ApprovalPolicy(tiers=tiers)


amounts = st.integers(min_value=1, max_value=10**31)


@given(policies(), amounts)
def test_chosen_tier_is_the_first_that_covers_the_amount(policy, amount):
    i = tier_index(policy, amount)
    tier = policy.tiers[i]
    assert tier.max_amount_atomic is None or amount <= tier.max_amount_atomic
    assert all(t.max_amount_atomic is not None and amount > t.max_amount_atomic for t in policy.tiers[:i])
    assert choose_tier(policy, amount) is tier


@given(policies(), amounts, amounts)
def test_a_larger_amount_never_falls_in_a_lower_tier(policy, a, b):
    low, high = sorted((a, b))
    assert tier_index(policy, low) <= tier_index(policy, high)


@given(policies())
def test_bounds_are_inclusive(policy):
    for i, tier in enumerate(policy.tiers[:-1]):
        assert tier_index(policy, tier.max_amount_atomic) == i
        assert tier_index(policy, tier.max_amount_atomic + 1) == i + 1
