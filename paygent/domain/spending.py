"""Spending policy of a wallet: per-payment cap, rolling velocity limits, recipient lists, allowed assets.

Pure rules. The reservation store (paygent/db/reservations.py) feeds them what a wallet already has reserved
or spent in each window, under a row lock, so the check and the reservation are one atomic step.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from paygent.domain.addresses import parse_address
from paygent.domain.money import ATOMIC, Unit, format_amount, format_window


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
    message: str  # amounts in token units ("7 USDC"); the atomic figures are the fields below
    limit_atomic: int | None = None
    used_atomic: int | None = None


def check_static(
    policy: SpendingPolicy, *, to: str, asset: str, amount_atomic: int, unit: Unit = ATOMIC
) -> LimitRefusal | None:
    """The rules that need no history. `unit` says amounts in messages ("7 USDC")."""
    if policy.allowed_assets is not None and asset not in policy.allowed_assets:
        return LimitRefusal(limit="asset", message=f"asset {asset} is not allowed for this wallet")
    if to in policy.denylist:
        return LimitRefusal(limit="denylist", message=f"recipient {to} is on the wallet's denylist")
    if policy.allowlist is not None and to not in policy.allowlist:
        return LimitRefusal(limit="allowlist", message=f"recipient {to} is not on the wallet's allowlist")
    cap = policy.per_payment_cap_atomic
    if cap is not None and amount_atomic > cap:
        return LimitRefusal(
            limit="per_payment_cap",
            message=f"{unit.text(amount_atomic)} exceeds the per-payment cap of {unit.text(cap)}",
            limit_atomic=cap,
        )
    return None


def check_velocity(
    policy: SpendingPolicy, used_atomic: dict[str, int], amount_atomic: int, unit: Unit = ATOMIC
) -> LimitRefusal | None:
    """`used_atomic[name]` is what the wallet reserved or spent in that limit's window, this payment excluded."""
    for limit in policy.velocity:
        used = used_atomic.get(limit.name, 0)
        if used + amount_atomic > limit.max_atomic:
            return LimitRefusal(
                limit=f"velocity:{limit.name}",
                message=f"{unit.text(amount_atomic)} would exceed the {limit.name} limit of "
                f"{unit.text(limit.max_atomic)} per {format_window(limit.window_seconds)}: "
                f"{unit.text(used)} already used, {unit.text(max(0, limit.max_atomic - used))} left",
                limit_atomic=limit.max_atomic,
                used_atomic=used,
            )
    return None


def describe_policy(policy: SpendingPolicy, unit: Unit) -> str:
    """One sentence a person or a model reads: 'at most 5 USDC a payment; at most 10 USDC per 24 hours (daily)'."""
    parts = []
    if policy.per_payment_cap_atomic is not None:
        parts.append(f"at most {unit.text(policy.per_payment_cap_atomic)} a payment")
    parts += [
        f"at most {unit.text(v.max_atomic)} per {format_window(v.window_seconds)} ({v.name})" for v in policy.velocity
    ]
    if policy.allowed_assets is not None:
        parts.append(f"assets: {', '.join(policy.allowed_assets) or 'none'}")
    if policy.allowlist is not None:
        parts.append(f"only to {len(policy.allowlist)} allowed recipient(s)")
    if policy.denylist:
        parts.append(f"never to {len(policy.denylist)} denied recipient(s)")
    return "; ".join(parts) or "no limits"


def policy_view(policy: SpendingPolicy, unit: Unit) -> dict:
    """The policy as stored (atomic units, `*_atomic`), each amount also in token units as PUT takes it
    (`per_payment_cap`, `velocity[].max`), the asset's symbol, and `summary` (describe_policy)."""
    out = policy.model_dump(mode="json")
    cap = policy.per_payment_cap_atomic
    out["per_payment_cap"] = format_amount(cap, unit.decimals) if cap is not None else None
    for shown, limit in zip(out["velocity"], policy.velocity, strict=True):
        shown["max"] = format_amount(limit.max_atomic, unit.decimals)
    return {**out, "asset": unit.symbol, "summary": describe_policy(policy, unit)}
