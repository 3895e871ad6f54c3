"""Spending policy of a wallet: per-payment cap, rolling velocity limits, recipient lists, allowed assets.

Pure rules. The reservation store (paygent/db/reservations.py) feeds them what a wallet already has reserved
or spent in each window, under a row lock, so the check and the reservation are one atomic step.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from paygent.domain.addresses import parse_address


class VelocityLimit(BaseModel):
    """At most `max_atomic` reserved or spent in any rolling window of `window_seconds`."""

    name: str  # e.g. "daily"
    window_seconds: int = Field(gt=0)
    max_atomic: int = Field(gt=0)


class SpendingPolicy(BaseModel):
    per_payment_cap_atomic: int | None = Field(None, gt=0)
    velocity: list[VelocityLimit] = Field(default_factory=list)
    allowlist: list[str] | None = None  # when set, only these recipients
    denylist: list[str] = Field(default_factory=list)
    allowed_assets: list[str] | None = None  # symbols; None = any asset the server knows

    @field_validator("allowlist", "denylist")
    @classmethod
    def _checksummed(cls, value):
        if value is None:
            return value
        return [parse_address(a, field="allowlist/denylist") for a in value]


class LimitRefusal(BaseModel):
    limit: str  # which rule refused: per_payment_cap, velocity:<name>, allowlist, denylist, asset
    message: str


def check_static(policy: SpendingPolicy, *, to: str, asset: str, amount_atomic: int) -> LimitRefusal | None:
    """The rules that need no history."""
    if policy.allowed_assets is not None and asset not in policy.allowed_assets:
        return LimitRefusal(limit="asset", message=f"asset {asset} is not allowed for this wallet")
    if to in policy.denylist:
        return LimitRefusal(limit="denylist", message=f"recipient {to} is on the wallet's denylist")
    if policy.allowlist is not None and to not in policy.allowlist:
        return LimitRefusal(limit="allowlist", message=f"recipient {to} is not on the wallet's allowlist")
    if policy.per_payment_cap_atomic is not None and amount_atomic > policy.per_payment_cap_atomic:
        return LimitRefusal(
            limit="per_payment_cap",
            message=f"amount {amount_atomic} exceeds the per-payment cap {policy.per_payment_cap_atomic}",
        )
    return None


def check_velocity(policy: SpendingPolicy, used_atomic: dict[str, int], amount_atomic: int) -> LimitRefusal | None:
    """`used_atomic[name]` is what the wallet reserved or spent in that limit's window, this payment excluded."""
    for limit in policy.velocity:
        used = used_atomic.get(limit.name, 0)
        if used + amount_atomic > limit.max_atomic:
            return LimitRefusal(
                limit=f"velocity:{limit.name}",
                message=f"{limit.name} limit {limit.max_atomic} would be exceeded: "
                f"{used} already used in the last {limit.window_seconds}s, {amount_atomic} asked",
            )
    return None
