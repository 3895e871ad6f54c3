"""Wallets: create (key generated and sealed server-side), list and read them, their balances, spending policy
and grants (who may spend from them).

Admins and auditors see every wallet of the tenant; anyone else (agents included) sees only the wallets they
hold a grant on: any other id answers 404, exactly like a missing one."""

from __future__ import annotations

import uuid
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.authz import Role, allow, oversees
from api.deps import Deps, deps
from api.errors import ApiError
from api.wallet_service import balance_view, visible_wallets
from paygent.db import grants, reservations
from paygent.db.accounts import Principal, create_wallet, get_wallet
from paygent.db.audit import append_audit
from paygent.db.schema import users, wallets
from paygent.domain.addresses import parse_address
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.errors import InvalidInput
from paygent.domain.money import parse_amount
from paygent.domain.spending import SpendingPolicy, VelocityLimit, policy_view
from paygent.domain.text import SafeText
from paygent.payment_input import DecimalText, resolve_asset
from paygent.settings import Settings

router = APIRouter(prefix="/v1/wallets", tags=["wallets"])
ADMIN = allow(Role.admin)
OVERSIGHT = allow(Role.admin, Role.auditor)
VIEWER = allow(*Role, agents=True)  # what they may see is then narrowed to their grants (see `_wallet_or_404`)


class WalletCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: SafeText = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")


ASSET_DOC = "a registered asset's symbol, e.g. USDC or EURC"


class VelocityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: SafeText = Field(min_length=1, max_length=50)
    window_seconds: int = Field(gt=0, le=366 * 86400)
    max: DecimalText
    asset: SafeText | None = Field(
        None, max_length=16, description=f"the limit's asset; unset: the policy's ({ASSET_DOC})"
    )


class SpendingPolicyIn(BaseModel):
    """Amounts are decimal strings in token units, like payments. Every amount rule is for one asset: a velocity
    limit's own `asset`, else the policy's `asset` (also the per-payment cap's; unset: the configured token). A
    payment meets only the rules for its asset: a limit on USDC does not limit EURC."""

    model_config = ConfigDict(extra="forbid")
    asset: SafeText | None = Field(
        None,
        max_length=16,
        description=f"the asset of the cap and of the limits ({ASSET_DOC}); unset: the configured token",
    )
    per_payment_cap: DecimalText | None = None
    velocity: list[VelocityIn] = Field(default_factory=list)
    allowlist: list[SafeText] | None = None
    denylist: list[SafeText] = Field(default_factory=list)
    allowed_assets: list[SafeText] | None = None


def _default_asset(settings: Settings) -> str | None:
    registered = settings.asset_registry().symbols(settings.chain_id)
    return registered[0] if registered else None


def policy_from_body(body: SpendingPolicyIn, settings: Settings, prefix: str = "") -> SpendingPolicy:
    """A spending policy (a wallet's or an agent's) from its HTTP form; refusals name the field. Each amount is
    read in its rule's asset (the configured token's decimals for a rule for each asset on its own)."""

    def asset_of(symbol: str | None) -> str | None:
        return resolve_asset(settings, symbol)[0] if symbol is not None else None

    def decimals(symbol: str | None) -> int:
        return settings.unit_of(symbol).decimals

    try:  # unset: the configured token (the first registered asset); every new rule is for one asset
        policy_asset = asset_of(body.asset) if body.asset is not None else _default_asset(settings)
    except InvalidInput as exc:
        raise InvalidInput(f"{prefix}asset", exc.reason) from None
    limits = []
    for i, v in enumerate(body.velocity):
        try:
            asset = asset_of(v.asset)
        except InvalidInput as exc:
            raise InvalidInput(f"{prefix}velocity[{i}].asset", exc.reason) from None
        limits.append(
            VelocityLimit(
                name=v.name,
                window_seconds=v.window_seconds,
                max_atomic=parse_amount(v.max, decimals(asset or policy_asset), field=f"{prefix}velocity[{i}].max"),
                asset=asset,
            )
        )
    policy = SpendingPolicy(
        asset=policy_asset,
        per_payment_cap_atomic=parse_amount(
            body.per_payment_cap, decimals(policy_asset), field=f"{prefix}per_payment_cap"
        )
        if body.per_payment_cap is not None
        else None,
        velocity=limits,
        allowlist=[parse_address(a, field=f"{prefix}allowlist") for a in body.allowlist]
        if body.allowlist is not None
        else None,
        denylist=[parse_address(a, field=f"{prefix}denylist") for a in body.denylist],
        allowed_assets=body.allowed_assets,
    )
    if len({v.name for v in policy.velocity}) != len(policy.velocity):
        raise InvalidInput(f"{prefix}velocity", "limit names must be distinct")
    return policy


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principal_id: SafeText = Field(description="a user or agent of this tenant")
    permission: Literal["spend"] = "spend"


class GrantsIn(BaseModel):
    """The wallet's grants, all of them: what is not listed is withdrawn."""

    model_config = ConfigDict(extra="forbid")
    grants: list[GrantIn] = Field(max_length=500)


async def _wallet_or_404(d: Deps, who: Principal, wallet_id: str):
    try:
        wid = uuid.UUID(wallet_id)
    except ValueError:
        raise ApiError(404, "not_found", "wallet not found") from None
    async with d.engine.connect() as conn:
        row = await get_wallet(conn, who.tenant_id, wid)
        if row is not None and not oversees(who) and not await grants.grants_of_on(conn, who.user_id, row.id):
            row = None
    if row is None:
        raise ApiError(404, "not_found", "wallet not found")
    return row


def _wallet_view(row, mine: list[str]) -> dict:
    return {
        "id": str(row.id),
        "name": row.name,
        "address": row.address,
        "created_at": row.created_at.isoformat(),
        "your_grants": sorted(mine),
    }


@router.get("")
async def list_wallets(who: Principal = Depends(VIEWER), d: Deps = Depends(deps)):
    """The wallets the caller may see, with the caller's own grants on each."""
    async with d.engine.connect() as conn:
        seen = await visible_wallets(conn, who)
    return {"items": [_wallet_view(r, mine) for r, mine in seen]}


@router.get("/{wallet_id}")
async def get_one(wallet_id: str, who: Principal = Depends(VIEWER), d: Deps = Depends(deps)):
    row = await _wallet_or_404(d, who, wallet_id)
    async with d.engine.connect() as conn:
        return _wallet_view(row, await grants.grants_of_on(conn, who.user_id, row.id))


@router.get("/{wallet_id}/grants")
async def get_grants(wallet_id: str, who: Principal = Depends(OVERSIGHT), d: Deps = Depends(deps)):
    row = await _wallet_or_404(d, who, wallet_id)
    async with d.engine.connect() as conn:
        return {"wallet_id": str(row.id), "grants": await grants.wallet_grants_view(conn, row.id)}


@router.put("/{wallet_id}/grants")
async def put_grants(wallet_id: str, body: GrantsIn, who: Principal = Depends(ADMIN), d: Deps = Depends(deps)):
    row = await _wallet_or_404(d, who, wallet_id)
    wanted: list[tuple[uuid.UUID, str]] = []
    for i, g in enumerate(body.grants):
        try:
            wanted.append((uuid.UUID(g.principal_id), g.permission))
        except ValueError:
            raise InvalidInput(f"grants[{i}].principal_id", "must be a UUID") from None
    async with d.engine.begin() as conn:
        known = set(
            await conn.scalars(
                sa.select(users.c.id).where(users.c.tenant_id == who.tenant_id, users.c.id.in_([u for u, _ in wanted]))
            )
        )
        for i, (user_id, _) in enumerate(wanted):
            if user_id not in known:
                raise InvalidInput(f"grants[{i}].principal_id", "no such user or agent in this tenant")
        change = await grants.replace_wallet_grants(
            conn, tenant_id=who.tenant_id, wallet_id=row.id, grants=wanted, granted_by=who.actor
        )
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.actor,
            channel=Channel.api,
            action=AuditAction.wallet_grants_set,
            subject_type=AuditSubject.wallet,
            subject_id=str(row.id),
            data=change,
        )
        return {"wallet_id": str(row.id), "grants": await grants.wallet_grants_view(conn, row.id)}


@router.post("", status_code=201)
async def create(body: WalletCreate, who: Principal = Depends(ADMIN), d: Deps = Depends(deps)):
    async with d.engine.begin() as conn:
        taken = await conn.scalar(
            sa.select(wallets.c.id).where(wallets.c.tenant_id == who.tenant_id, wallets.c.name == body.name)
        )
        if taken:
            raise ApiError(409, "conflict", f"name: a wallet named {body.name!r} exists", "name")
        wallet_id, address = await create_wallet(conn, who.tenant_id, body.name, d.settings.master_key_bytes())
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.actor,
            channel=Channel.api,
            action=AuditAction.wallet_created,
            subject_type=AuditSubject.wallet,
            subject_id=str(wallet_id),
            data={"address": address},
        )
    return {"id": str(wallet_id), "name": body.name, "address": address}


@router.get("/{wallet_id}/balance")
async def balance(wallet_id: str, who: Principal = Depends(VIEWER), d: Deps = Depends(deps)):
    return await balance_view(d, await _wallet_or_404(d, who, wallet_id))


@router.get("/{wallet_id}/spending-policy")
async def get_policy(wallet_id: str, who: Principal = Depends(VIEWER), d: Deps = Depends(deps)):
    row = await _wallet_or_404(d, who, wallet_id)
    async with d.engine.connect() as conn:
        policy = await reservations.load_policy(conn, row.id)
    return policy_view(policy, d.settings.unit_of)


@router.put("/{wallet_id}/spending-policy")
async def put_policy(wallet_id: str, body: SpendingPolicyIn, who: Principal = Depends(ADMIN), d: Deps = Depends(deps)):
    row = await _wallet_or_404(d, who, wallet_id)
    policy = policy_from_body(body, d.settings)
    async with d.engine.begin() as conn:
        await reservations.save_policy(conn, row.id, policy, who.actor)
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.actor,
            channel=Channel.api,
            action=AuditAction.wallet_spending_policy_set,
            subject_type=AuditSubject.wallet,
            subject_id=str(row.id),
            data=policy.model_dump(mode="json"),
        )
    return policy_view(policy, d.settings.unit_of)
