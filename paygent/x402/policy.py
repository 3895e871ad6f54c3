"""Whether an x402 server's payment requirements may be paid: pure rules, no SDK and no I/O.

A requirement is one entry of a 402 answer's `accepts`, as JSON on the wire (camelCase keys):
v2 `{"scheme", "network", "asset", "amount", "payTo", "maxTimeoutSeconds", "extra"}`; v1 names the
amount `maxAmountRequired`. Amounts are decimal strings of atomic units on the wire and `int` here.
A requirement that fails any rule gets nothing signed; the refusal names the rule.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from paygent.domain.addresses import parse_address
from paygent.domain.errors import InvalidInput
from paygent.domain.money import ATOMIC, Unit

DEFAULT_NETWORK = "eip155:31337"
DEFAULT_MAX_VALIDITY_SECONDS = 3600
_DIGITS = re.compile(r"^[0-9]{1,78}$")  # ASCII digits only (str.isdigit() accepts '²'); fits uint256


class X402Policy(BaseModel):
    """What a wallet may pay for one request. Built by the caller from the wallet's spending policy."""

    max_amount_atomic: int = Field(gt=0, description="per-request cap, atomic units of the asset")
    allowed_assets: list[str] = Field(min_length=1, description="token contract addresses")
    network: str = DEFAULT_NETWORK
    recipient_allowlist: list[str] | None = None  # None = any recipient not on the denylist
    recipient_denylist: list[str] = Field(default_factory=list)
    # how long the signed authorization may stay valid (EIP-3009 validBefore = now + maxTimeoutSeconds)
    max_validity_seconds: int = Field(DEFAULT_MAX_VALIDITY_SECONDS, gt=0)
    # how the allowed asset's amounts read in a refusal ("0.06 USDC"); unset: atomic units
    decimals: int | None = Field(None, ge=0)
    symbol: str | None = None

    @property
    def unit(self) -> Unit:
        return Unit(self.decimals, self.symbol) if self.decimals is not None and self.symbol else ATOMIC


def requirement_amount(req: dict[str, Any]) -> int:
    """The atomic amount a requirement asks for (v2 `amount`, v1 `maxAmountRequired`)."""
    raw = req.get("amount", req.get("maxAmountRequired"))
    if not isinstance(raw, str) or not _DIGITS.match(raw):
        raise ValueError(f"amount {raw!r} is not a decimal string of atomic units")
    return int(raw)


def _same(address: str, candidates: list[str]) -> bool:
    return address.lower() in {c.lower() for c in candidates}


def refusal(req: dict[str, Any], policy: X402Policy) -> str | None:
    """The reason this single requirement must not be paid, or None when it may be."""
    scheme = req.get("scheme")
    if scheme != "exact":
        return f"scheme {scheme!r} is not supported (only 'exact')"
    network = req.get("network")
    if network != policy.network:
        return f"network {network!r} is not allowed (only {policy.network!r})"
    try:
        asset = parse_address(req.get("asset"), field="asset")
        pay_to = parse_address(req.get("payTo"), field="payTo")
    except InvalidInput as exc:
        return f"malformed requirement: {exc}"
    if not _same(asset, policy.allowed_assets):
        return f"asset {asset} is not an allowed asset"
    try:
        amount = requirement_amount(req)
    except ValueError as exc:
        return f"malformed requirement: {exc}"
    if amount <= 0:
        return "amount must be positive"
    if amount > policy.max_amount_atomic:
        unit = policy.unit
        return f"amount {unit.text(amount)} exceeds the per-request cap of {unit.text(policy.max_amount_atomic)}"
    if policy.recipient_allowlist is not None and not _same(pay_to, policy.recipient_allowlist):
        return f"recipient {pay_to} is not on the allowlist"
    if _same(pay_to, policy.recipient_denylist):
        return f"recipient {pay_to} is on the denylist"
    extra = req.get("extra") or {}
    method = extra.get("assetTransferMethod")
    if method not in (None, "eip3009"):
        return f"asset transfer method {method!r} is not supported (only EIP-3009)"
    flow = extra.get("paymentFlow")
    if flow not in (None, "authorization"):
        return f"payment flow {flow!r} is not supported (only 'authorization')"
    timeout = req.get("maxTimeoutSeconds")
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 0 < timeout <= policy.max_validity_seconds:
        return f"maxTimeoutSeconds {timeout!r} is outside 1..{policy.max_validity_seconds}"
    return None


def choose(accepts: list[dict[str, Any]], policy: X402Policy) -> tuple[int | None, str | None]:
    """(index of the first payable requirement, None), or (None, why none is payable)."""
    if not accepts:
        return None, "the server offered no payment requirements"
    reasons = []
    for index, req in enumerate(accepts):
        reason = refusal(req, policy)
        if reason is None:
            return index, None
        reasons.append(reason)
    return None, reasons[0] if len(reasons) == 1 else "; ".join(f"option {i}: {r}" for i, r in enumerate(reasons))
