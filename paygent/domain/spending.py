"""Spending policy of a wallet: per-payment cap, rolling velocity limits, recipient lists, allowed assets.

Every amount rule is for one asset: a velocity limit's own `asset`, else the policy's `asset` (which is also the
per-payment cap's). A rule with neither (every policy stored before there was more than one asset) holds for each
asset on its own, counted in that asset's units: a limit never silently stops applying because a token was added.
A payment meets only the rules for its asset (`for_asset`): a limit on USDC does not limit EURC.

Pure rules. The reservation store (paygent/db/reservations.py) feeds them what a wallet already has reserved
or spent in each window, under a row lock, so the check and the reservation are one atomic step.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field, field_validator

from paygent.domain.addresses import parse_address
from paygent.domain.money import ATOMIC, Unit, format_amount, format_window, norm_symbol

UnitOf = Callable[[str | None], Unit]  # an asset's symbol (None: the server's configured token) -> its Unit


def _symbol(value: str | None) -> str | None:
    return norm_symbol(value) if value is not None else None


class VelocityLimit(BaseModel):
    """At most `max_atomic` of one asset reserved or spent in any rolling window of `window_seconds`."""

    name: str  # e.g. "daily"
    window_seconds: int = Field(gt=0)
    max_atomic: int = Field(gt=0)
    asset: str | None = None  # None: the policy's asset (see the module's docstring)

    @field_validator("asset")
    @classmethod
    def _asset(cls, value: str | None) -> str | None:
        return _symbol(value)


class SpendingPolicy(BaseModel):
    per_payment_cap_atomic: int | None = Field(None, gt=0)
    velocity: list[VelocityLimit] = Field(default_factory=list)
    allowlist: list[str] | None = None  # when set, only these recipients
    denylist: list[str] = Field(default_factory=list)
    allowed_assets: list[str] | None = None  # symbols; None = any asset the server knows
    # the asset of the per-payment cap and of velocity limits without their own; None: each asset on its own
    asset: str | None = None

    @field_validator("asset")
    @classmethod
    def _asset(cls, value: str | None) -> str | None:
        return _symbol(value)

    @field_validator("allowed_assets")
    @classmethod
    def _allowed(cls, value: list[str] | None) -> list[str] | None:
        return [norm_symbol(a) for a in value] if value is not None else None

    @field_validator("allowlist", "denylist")
    @classmethod
    def _checksummed(cls, value):
        if value is None:
            return value
        return [parse_address(a, field="allowlist/denylist") for a in value]


def limit_asset(policy: SpendingPolicy, limit: VelocityLimit | None = None) -> str | None:
    """The asset a rule is for: a velocity limit's own, else the policy's (None: each asset on its own)."""
    return (limit.asset if limit is not None else None) or policy.asset


def for_asset(policy: SpendingPolicy, asset: str) -> SpendingPolicy:
    """The policy as a payment in `asset` meets it: only the amount rules for that asset (or for every asset)."""
    asset = norm_symbol(asset)

    def applies(rule_asset: str | None) -> bool:
        return rule_asset is None or rule_asset == asset

    return policy.model_copy(
        update={
            "per_payment_cap_atomic": policy.per_payment_cap_atomic if applies(policy.asset) else None,
            "velocity": [v for v in policy.velocity if applies(limit_asset(policy, v))],
        }
    )


class LimitRefusal(BaseModel):
    limit: str  # which rule refused: per_payment_cap, velocity:<name>, allowlist, denylist, asset
    message: str  # amounts in token units ("7 USDC"); the atomic figures are the fields below
    limit_atomic: int | None = None
    used_atomic: int | None = None


def check_static(
    policy: SpendingPolicy, *, to: str, asset: str, amount_atomic: int, unit: Unit = ATOMIC
) -> LimitRefusal | None:
    """The rules that need no history, for a payment in `asset` (`for_asset`). `unit` says amounts in messages
    ("7 USDC")."""
    policy = for_asset(policy, asset)
    if policy.allowed_assets is not None and norm_symbol(asset) not in policy.allowed_assets:
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
    """`used_atomic[name]` is what the wallet reserved or spent in that limit's window, this payment excluded.
    `policy`: narrowed to the payment's asset (`for_asset`) by the caller, which counted `used_atomic` in it."""
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


def describe_policy(policy: SpendingPolicy, unit_of: UnitOf) -> str:
    """One sentence a person or a model reads: 'at most 5 USDC a payment; at most 10 USDC per 24 hours (daily)'.
    A rule for each asset on its own reads "of each asset"."""

    def text(atomic: int, asset: str | None) -> str:
        return unit_of(asset).text(atomic) + (" of each asset" if asset is None else "")

    parts = []
    if policy.per_payment_cap_atomic is not None:
        parts.append(f"at most {text(policy.per_payment_cap_atomic, policy.asset)} a payment")
    parts += [
        f"at most {text(v.max_atomic, limit_asset(policy, v))} per {format_window(v.window_seconds)} ({v.name})"
        for v in policy.velocity
    ]
    if policy.allowed_assets is not None:
        parts.append(f"assets: {', '.join(policy.allowed_assets) or 'none'}")
    if policy.allowlist is not None:
        parts.append(f"only to {len(policy.allowlist)} allowed recipient(s)")
    if policy.denylist:
        parts.append(f"never to {len(policy.denylist)} denied recipient(s)")
    return "; ".join(parts) or "no limits"


def policy_view(policy: SpendingPolicy, unit_of: UnitOf) -> dict:
    """The policy as stored (atomic units, `*_atomic`), each amount also in token units as PUT takes it
    (`per_payment_cap`, `velocity[].max`), the asset of each rule (`asset`, `velocity[].asset`: null for a rule
    that holds for each asset on its own), and `summary` (describe_policy)."""
    out = policy.model_dump(mode="json")
    cap = policy.per_payment_cap_atomic
    out["per_payment_cap"] = format_amount(cap, unit_of(policy.asset).decimals) if cap is not None else None
    for shown, limit in zip(out["velocity"], policy.velocity, strict=True):
        shown["asset"] = limit_asset(policy, limit)
        shown["max"] = format_amount(limit.max_atomic, unit_of(shown["asset"]).decimals)
    return {**out, "summary": describe_policy(policy, unit_of)}
