"""Approval policy: amount tiers, each naming how many distinct humans must approve, from which set, how long
they have, and how long the cooling-off time-lock lasts after the last approval.

Pure (no I/O, no clock): the API validates policies with it, the ApprovalWorkflow chooses a tier with it, and both
must agree, so there is exactly one definition of "which tier does this amount fall in".
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

HOUR = 3600
DAY = 24 * HOUR


class Tier(BaseModel):
    """Amounts up to and including `max_amount_atomic` (None: every amount above the previous tier)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_amount_atomic: int | None = Field(default=None, gt=0)
    approvals_required: int = Field(ge=0)
    approvers: list[str] = Field(default_factory=list)
    approval_timeout_seconds: int = Field(default=DAY, gt=0)
    timelock_seconds: int = Field(default=0, ge=0)

    @field_validator("approvers")
    @classmethod
    def _distinct_names(cls, names: list[str]) -> list[str]:
        # Distinct humans are the whole point of M-of-N: a name listed twice would let one person count twice.
        cleaned = [n.strip() for n in names]
        if any(not n for n in cleaned):
            raise ValueError("approver names must not be empty")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("approver names must be distinct")
        return cleaned

    @model_validator(mode="after")
    def _satisfiable(self) -> Tier:
        if self.approvals_required > len(self.approvers):
            raise ValueError(
                f"needs {self.approvals_required} approvals but lists only {len(self.approvers)} approver(s)"
            )
        return self

    def describe(self) -> str:
        if self.approvals_required == 0:
            return "no approval needed"
        return f"{self.approvals_required} of {', '.join(self.approvers)}"


class ApprovalPolicy(BaseModel):
    """Tiers in ascending order of `max_amount_atomic`; the last one is unbounded so every amount has a tier."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tiers: list[Tier] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered_and_total(self) -> ApprovalPolicy:
        bounds = [t.max_amount_atomic for t in self.tiers]
        if bounds[-1] is not None:
            raise ValueError("the last tier must be unbounded (max_amount_atomic = null) so every amount has a tier")
        if any(b is None for b in bounds[:-1]):
            raise ValueError("only the last tier may be unbounded")
        limits = [b for b in bounds[:-1] if b is not None]
        if any(a >= b for a, b in zip(limits, limits[1:], strict=False)):
            raise ValueError("tiers must be in strictly ascending order of max_amount_atomic")
        return self

    def approver_names(self) -> set[str]:
        """Everyone who approves in some tier: the people who may delegate."""
        return {name for tier in self.tiers for name in tier.approvers}


def tier_index(policy: ApprovalPolicy, amount_atomic: int) -> int:
    """Index of the first tier whose bound is at or above the amount (bounds are inclusive)."""
    if amount_atomic <= 0:
        raise ValueError("amount_atomic must be positive")
    for i, tier in enumerate(policy.tiers):
        if tier.max_amount_atomic is None or amount_atomic <= tier.max_amount_atomic:
            return i
    raise AssertionError("unreachable: the last tier is unbounded")  # guaranteed by ApprovalPolicy validation


def choose_tier(policy: ApprovalPolicy, amount_atomic: int) -> Tier:
    return policy.tiers[tier_index(policy, amount_atomic)]


def needs_approval(policy: ApprovalPolicy, amount_atomic: int) -> bool:
    """False when the tier asks for nothing: the caller may skip the ApprovalWorkflow entirely."""
    tier = choose_tier(policy, amount_atomic)
    return tier.approvals_required > 0 or tier.timelock_seconds > 0


def default_dev_policy(decimals: int = 6) -> ApprovalPolicy:
    """The dev tenant's policy from issue 3: <=100 none; <=1,000 1 of 3; <=10,000 2 of 3; above 3 of 3;
    1-hour time-lock above 1,000 tokens; 24 hours to decide."""
    unit = 10**decimals
    trio = ["bob", "carol", "dave"]
    return ApprovalPolicy(
        tiers=[
            Tier(max_amount_atomic=100 * unit, approvals_required=0, approvers=[]),
            Tier(max_amount_atomic=1_000 * unit, approvals_required=1, approvers=trio),
            Tier(max_amount_atomic=10_000 * unit, approvals_required=2, approvers=trio, timelock_seconds=HOUR),
            Tier(max_amount_atomic=None, approvals_required=3, approvers=trio, timelock_seconds=HOUR),
        ]
    )
