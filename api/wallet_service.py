"""Reading wallets for a caller, shared by the HTTP routes (api/routes/wallets.py) and the MCP tools: which
wallets the caller may see, a wallet's balances on chain, and where its spending limits stand."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from api.authz import oversees
from api.deps import Deps
from paygent.chain.token import balance_of
from paygent.db import grants, reservations
from paygent.db.accounts import Principal
from paygent.db.agents import load_agent_policy
from paygent.db.schema import wallets
from paygent.domain.money import format_amount
from paygent.domain.spending import SpendingPolicy, for_asset

WalletRow = sa.Row[uuid.UUID, str, str, datetime]  # id, name, address, created_at


async def visible_wallets(conn: AsyncConnection, who: Principal) -> list[tuple[WalletRow, list[str]]]:
    """(wallet row, the caller's grants on it) for every wallet the caller may see: admins and auditors all of
    the tenant's, anyone else (agents included) those they hold a grant on."""
    mine = await grants.grants_of(conn, who.user_id)
    rows = (
        await conn.execute(
            sa.select(wallets.c.id, wallets.c.name, wallets.c.address, wallets.c.created_at)
            .where(wallets.c.tenant_id == who.tenant_id)
            .order_by(wallets.c.name)
        )
    ).all()
    return [(r, mine.get(r.id, [])) for r in rows if oversees(who) or r.id in mine]


async def balance_view(d: Deps, row) -> dict:
    """The wallet's native balance and its balance of every registered asset on the chain (paygent/assets.py,
    the configured token first), read from the chain now (amounts as decimal strings)."""
    wei = await d.w3.eth.get_balance(row.address)
    tokens = []
    for asset in d.settings.asset_registry().on_chain(d.settings.chain_id):
        atomic = await balance_of(d.w3, asset.address, row.address)
        tokens.append(
            {
                "symbol": asset.symbol,
                "address": asset.address,
                "amount": format_amount(atomic, asset.decimals),
                "amount_atomic": str(atomic),
            }
        )
    return {
        "wallet_id": str(row.id),
        "address": row.address,
        "native": {"symbol": "ETH", "amount": format_amount(wei, 18), "amount_atomic": str(wei)},
        "tokens": tokens,
    }


def _limits(policy: SpendingPolicy, usage: list[dict], decimals: int) -> dict:
    def money(atomic: int) -> str:
        return format_amount(atomic, decimals)

    return {
        "per_payment_cap": money(policy.per_payment_cap_atomic) if policy.per_payment_cap_atomic else None,
        "allowed_assets": policy.allowed_assets,
        "allowlist": policy.allowlist,
        "denylist": policy.denylist,
        "limits": [
            {
                "limit": u["limit"],
                "window_seconds": u["window_seconds"],
                "max": money(u["max_atomic"]),
                "used": money(u["used_atomic"]),
                "reserved": money(u["reserved_atomic"]),
                "remaining": money(u["remaining_atomic"]),
            }
            for u in usage
        ],
    }


async def spending_status(
    conn: AsyncConnection, who: Principal, wallet_ids: list[uuid.UUID], *, asset: str, decimals: int
) -> dict:
    """Per limit for `asset` (the limits a payment in it meets): used (confirmed), reserved (in flight), remaining
    and window, for each wallet and, for an agent, its own budget across wallets (the tighter of the two applies
    to every payment)."""
    out: dict = {"asset": asset, "wallets": []}
    for wallet_id in wallet_ids:
        policy = for_asset(await reservations.load_policy(conn, wallet_id), asset)
        usage = await reservations.usage(conn, policy, asset=asset, wallet_id=wallet_id)
        out["wallets"].append({"wallet_id": str(wallet_id), **_limits(policy, usage, decimals)})
    if who.is_agent:
        loaded = await load_agent_policy(conn, who.user_id)
        if loaded is not None:
            policy, disabled = for_asset(loaded[0], asset), loaded[1]
            usage = await reservations.usage(conn, policy, asset=asset, agent_id=who.user_id)
            out["agent"] = {"agent": who.name, "disabled": disabled, **_limits(policy, usage, decimals)}
    return out
