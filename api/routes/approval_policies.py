"""Approval policies over HTTP (admins only): the tenant's, and a wallet's override of it.

Amounts are decimal strings in token units here and atomic integers inside. The body is validated by hand rather
than by FastAPI so that every error names its field the way a person reads it (`tiers[1].max_amount`), and
approver names are checked against the tenant's users: a typo would make a tier impossible to satisfy, and every
payment in it would sit until it expired. Changes go through `paygent.db.policies`, which audits them.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from api.approval_http import channel
from api.authz import Role, allow
from api.deps import Deps, deps
from api.errors import ApiError
from paygent.db import policies
from paygent.db.accounts import Principal, find_user, get_wallet
from paygent.domain.approval_policy import DAY, ApprovalPolicy, Tier
from paygent.domain.channels import Channel
from paygent.domain.errors import InvalidInput
from paygent.domain.money import format_amount, parse_amount
from paygent.domain.text import SafeText

router = APIRouter(tags=["approval policies"])
ADMIN, READ = allow(Role.admin), allow(Role.admin, Role.auditor)  # admins change; auditors read too
MAX_SECONDS = 366 * DAY


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Any, so that parse_amount explains why a JSON number is refused (float rounding) instead of "not a string"
    max_amount: Any = Field(description="decimal string; null for the last, unbounded tier")
    approvals_required: int = Field(ge=0, le=100)
    approvers: list[SafeText] = Field(default_factory=list, max_length=100)
    approval_timeout_seconds: int = Field(DAY, gt=0, le=MAX_SECONDS)
    timelock_seconds: int = Field(0, ge=0, le=MAX_SECONDS)


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tiers: list[TierIn] = Field(min_length=1, max_length=20)


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    return [_inline(v, defs) for v in schema] if isinstance(schema, list) else schema


# The body is validated by hand (see the module docstring); the OpenAPI document still describes it.
_POLICY_SCHEMA = PolicyIn.model_json_schema()
POLICY_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline(_POLICY_SCHEMA, _POLICY_SCHEMA.get("$defs", {}))}},
    }
}


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


async def parse_policy(raw: Any, conn: AsyncConnection, tenant_id: uuid.UUID, decimals: int) -> ApprovalPolicy:
    """Body -> ApprovalPolicy, or InvalidInput naming the first bad field."""
    try:
        body = PolicyIn.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field(first["loc"])
        raise InvalidInput(field, first["msg"]) from None
    tiers: list[Tier] = []
    last = len(body.tiers) - 1
    for i, t in enumerate(body.tiers):
        where = f"tiers[{i}]"
        bound = None if t.max_amount is None else parse_amount(t.max_amount, decimals, field=f"{where}.max_amount")
        if bound is None and i != last:
            raise InvalidInput(f"{where}.max_amount", "only the last tier may be unbounded (null)")
        if bound is not None and i == last:
            raise InvalidInput(
                f"{where}.max_amount", "the last tier must be unbounded (null) so every amount has a tier"
            )
        if bound is not None and tiers and bound <= (tiers[-1].max_amount_atomic or 0):
            raise InvalidInput(
                f"{where}.max_amount",
                f"must be above tiers[{i - 1}].max_amount "
                f"({format_amount(tiers[-1].max_amount_atomic or 0, decimals)})",
            )
        for j, name in enumerate(t.approvers):
            if await find_user(conn, tenant_id, name.strip()) is None:
                raise InvalidInput(f"{where}.approvers[{j}]", f"no user {name!r} in this tenant")
        try:
            tiers.append(
                Tier(
                    max_amount_atomic=bound,
                    approvals_required=t.approvals_required,
                    approvers=t.approvers,
                    approval_timeout_seconds=t.approval_timeout_seconds,
                    timelock_seconds=t.timelock_seconds,
                )
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = [p for p in first["loc"] if p != "max_amount_atomic"] or ["approvals_required"]
            raise InvalidInput(_field((where, *loc)), first["msg"].removeprefix("Value error, ")) from None
    try:
        return ApprovalPolicy(tiers=tiers)
    except ValidationError as exc:  # a backstop: the checks above name the field first
        raise InvalidInput("tiers", exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def policy_json(policy: ApprovalPolicy, decimals: int, *, source: str, wallet_id: str | None = None) -> dict:
    tiers = []
    for t in policy.tiers:
        bound = t.max_amount_atomic
        tiers.append(
            {
                "max_amount": None if bound is None else format_amount(bound, decimals),
                "max_amount_atomic": None if bound is None else str(bound),
                "approvals_required": t.approvals_required,
                "approvers": list(t.approvers),
                "approval_timeout_seconds": t.approval_timeout_seconds,
                "timelock_seconds": t.timelock_seconds,
                "describe": t.describe(),
            }
        )
    return {"scope": "wallet" if wallet_id else "tenant", "wallet_id": wallet_id, "source": source, "tiers": tiers}


async def _effective(conn: AsyncConnection, who: Principal, decimals: int, wallet_id: uuid.UUID | None) -> dict:
    """The policy in force for the scope, and where it comes from (wallet, tenant, or the built-in default)."""
    if wallet_id is not None:
        stored = await policies.get_stored_policy(conn, who.tenant_id, wallet_id)
        if stored is not None:
            return policy_json(stored, decimals, source="wallet", wallet_id=str(wallet_id))
    stored = await policies.get_stored_policy(conn, who.tenant_id)
    policy = stored or await policies.load_policy(conn, who.tenant_id, decimals=decimals)
    return policy_json(
        policy,
        decimals,
        source="tenant" if stored else "default",
        wallet_id=None if wallet_id is None else str(wallet_id),
    )


async def _wallet(conn: AsyncConnection, who: Principal, wallet_id: str) -> uuid.UUID:
    try:
        wid = uuid.UUID(wallet_id)
    except ValueError:
        raise ApiError(404, "not_found", "wallet not found") from None
    if await get_wallet(conn, who.tenant_id, wid) is None:
        raise ApiError(404, "not_found", "wallet not found")
    return wid


@router.get("/v1/approval-policy")
async def get_tenant_policy(who: Principal = Depends(READ), d: Deps = Depends(deps)):
    async with d.engine.connect() as conn:
        return await _effective(conn, who, d.settings.token_decimals, None)


@router.put("/v1/approval-policy", openapi_extra=POLICY_BODY_DOC)
async def put_tenant_policy(
    raw: Any = Body(...), who: Principal = Depends(ADMIN), d: Deps = Depends(deps), via: Channel = Depends(channel)
):
    """Applies to new operations; approvals already running keep the policy they started with."""
    decimals = d.settings.token_decimals
    async with d.engine.begin() as conn:
        policy = await parse_policy(raw, conn, who.tenant_id, decimals)
        await policies.save_policy(conn, who.tenant_id, policy, actor=who.actor, channel=via)
    return policy_json(policy, decimals, source="tenant")


@router.get("/v1/wallets/{wallet_id}/approval-policy")
async def get_wallet_policy(wallet_id: str, who: Principal = Depends(READ), d: Deps = Depends(deps)):
    async with d.engine.connect() as conn:
        return await _effective(conn, who, d.settings.token_decimals, await _wallet(conn, who, wallet_id))


@router.put("/v1/wallets/{wallet_id}/approval-policy", openapi_extra=POLICY_BODY_DOC)
async def put_wallet_policy(
    wallet_id: str,
    raw: Any = Body(...),
    who: Principal = Depends(ADMIN),
    d: Deps = Depends(deps),
    via: Channel = Depends(channel),
):
    decimals = d.settings.token_decimals
    async with d.engine.begin() as conn:
        wid = await _wallet(conn, who, wallet_id)
        policy = await parse_policy(raw, conn, who.tenant_id, decimals)
        await policies.save_policy(conn, who.tenant_id, policy, actor=who.actor, channel=via, wallet_id=wid)
    return policy_json(policy, decimals, source="wallet", wallet_id=str(wid))


@router.delete("/v1/wallets/{wallet_id}/approval-policy")
async def delete_wallet_policy(
    wallet_id: str, who: Principal = Depends(ADMIN), d: Deps = Depends(deps), via: Channel = Depends(channel)
):
    """Removes the override (idempotent): the wallet falls back to the tenant's policy, which is returned."""
    decimals = d.settings.token_decimals
    async with d.engine.begin() as conn:
        wid = await _wallet(conn, who, wallet_id)
        deleted = await policies.delete_policy(conn, who.tenant_id, actor=who.actor, channel=via, wallet_id=wid)
        effective = await _effective(conn, who, decimals, wid)
    return {"deleted": deleted, "effective": effective}
