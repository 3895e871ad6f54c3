"""Wallets: create (key generated and sealed server-side), read balances, set the spending policy."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Deps, deps, principal
from api.errors import ApiError
from paygent.chain.token import balance_of
from paygent.db import reservations
from paygent.db.accounts import Principal, create_wallet, get_wallet
from paygent.db.audit import append_audit
from paygent.db.schema import wallets
from paygent.domain.addresses import parse_address
from paygent.domain.errors import InvalidInput
from paygent.domain.money import format_amount, parse_amount
from paygent.domain.spending import SpendingPolicy, VelocityLimit

router = APIRouter(prefix="/v1/wallets", tags=["wallets"])


class WalletCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")


class VelocityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=50)
    window_seconds: int = Field(gt=0, le=366 * 86400)
    max: str


class SpendingPolicyIn(BaseModel):
    """Amounts are decimal strings in token units, like payments."""

    model_config = ConfigDict(extra="forbid")
    per_payment_cap: str | None = None
    velocity: list[VelocityIn] = Field(default_factory=list)
    allowlist: list[str] | None = None
    denylist: list[str] = Field(default_factory=list)
    allowed_assets: list[str] | None = None


def _require_admin(who: Principal) -> None:
    if not who.has_role("admin"):
        raise ApiError(403, "forbidden", "this action needs the admin role")


async def _wallet_or_404(d: Deps, who: Principal, wallet_id: str):
    try:
        wid = uuid.UUID(wallet_id)
    except ValueError:
        raise ApiError(404, "not_found", "wallet not found") from None
    async with d.engine.connect() as conn:
        row = await get_wallet(conn, who.tenant_id, wid)
    if row is None:
        raise ApiError(404, "not_found", "wallet not found")
    return row


@router.post("", status_code=201)
async def create(body: WalletCreate, who: Principal = Depends(principal), d: Deps = Depends(deps)):
    _require_admin(who)
    async with d.engine.begin() as conn:
        taken = await conn.scalar(sa.select(wallets.c.id).where(wallets.c.tenant_id == who.tenant_id,
                                                                wallets.c.name == body.name))
        if taken:
            raise ApiError(409, "conflict", f"name: a wallet named {body.name!r} exists", "name")
        wallet_id, address = await create_wallet(conn, who.tenant_id, body.name, d.settings.master_key_bytes())
        await append_audit(conn, tenant_id=who.tenant_id, actor=who.name, channel="api", action="wallet.created",
                           subject_type="wallet", subject_id=str(wallet_id), data={"address": address})
    return {"id": str(wallet_id), "name": body.name, "address": address}


@router.get("/{wallet_id}/balance")
async def balance(wallet_id: str, who: Principal = Depends(principal), d: Deps = Depends(deps)):
    row = await _wallet_or_404(d, who, wallet_id)
    w3 = d.w3
    wei = await w3.eth.get_balance(row.address)
    tokens = []
    if d.settings.token_address:
        atomic = await balance_of(w3, d.settings.token_address, row.address)
        tokens.append({"symbol": d.settings.token_symbol, "address": d.settings.token_address,
                       "amount": format_amount(atomic, d.settings.token_decimals), "amount_atomic": str(atomic)})
    return {"wallet_id": str(row.id), "address": row.address,
            "native": {"symbol": "ETH", "amount": format_amount(wei, 18), "amount_atomic": str(wei)},
            "tokens": tokens}


@router.get("/{wallet_id}/spending-policy")
async def get_policy(wallet_id: str, who: Principal = Depends(principal), d: Deps = Depends(deps)):
    row = await _wallet_or_404(d, who, wallet_id)
    async with d.engine.connect() as conn:
        policy = await reservations.load_policy(conn, row.id)
    return policy.model_dump(mode="json")


@router.put("/{wallet_id}/spending-policy")
async def put_policy(wallet_id: str, body: SpendingPolicyIn, who: Principal = Depends(principal),
                     d: Deps = Depends(deps)):
    _require_admin(who)
    row = await _wallet_or_404(d, who, wallet_id)
    decimals = d.settings.token_decimals
    policy = SpendingPolicy(
        per_payment_cap_atomic=parse_amount(body.per_payment_cap, decimals, field="per_payment_cap")
        if body.per_payment_cap is not None else None,
        velocity=[VelocityLimit(name=v.name, window_seconds=v.window_seconds,
                                max_atomic=parse_amount(v.max, decimals, field=f"velocity[{i}].max"))
                  for i, v in enumerate(body.velocity)],
        allowlist=[parse_address(a, field="allowlist") for a in body.allowlist] if body.allowlist is not None
        else None,
        denylist=[parse_address(a, field="denylist") for a in body.denylist],
        allowed_assets=body.allowed_assets,
    )
    if len({v.name for v in policy.velocity}) != len(policy.velocity):
        raise InvalidInput("velocity", "limit names must be distinct")
    async with d.engine.begin() as conn:
        await reservations.save_policy(conn, row.id, policy, who.name)
        await append_audit(conn, tenant_id=who.tenant_id, actor=who.name, channel="api",
                           action="wallet.spending_policy_set", subject_type="wallet", subject_id=str(row.id),
                           data=policy.model_dump(mode="json"))
    return policy.model_dump(mode="json")
