"""The paid-services registry: x402 resources and paid MCP tools a tenant's agents may use (plus rows with no
tenant, offered to every tenant). Discovery writes offers here; `list_paid_services` and `call_paid_tool` read."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.agent_schema import paid_services
from paygent.domain.money import format_amount

LIST_LIMIT = 100


@dataclass(frozen=True)
class Offer:
    """One priced thing a server offers, as discovery read it from the server's 402 answer."""

    name: str
    url: str
    transport: str  # http | mcp
    asset: str
    price_atomic: int
    network: str
    pay_to: str
    description: str = ""
    tool: str | None = None
    metadata: dict = field(default_factory=dict)


async def list_services(conn: AsyncConnection, tenant_id: uuid.UUID | str) -> Sequence[RowMapping]:
    return (
        (
            await conn.execute(
                sa.select(paid_services)
                .where(
                    sa.or_(paid_services.c.tenant_id.is_(None), paid_services.c.tenant_id == uuid.UUID(str(tenant_id))),
                )
                .order_by(paid_services.c.name)
                .limit(LIST_LIMIT)
            )
        )
        .mappings()
        .all()
    )


async def find_service(conn: AsyncConnection, tenant_id: uuid.UUID | str, name: str):
    """The tenant's service of that name (its own before a shared one), or None."""
    return (
        (
            await conn.execute(
                sa.select(paid_services)
                .where(
                    paid_services.c.name == name,
                    sa.or_(paid_services.c.tenant_id.is_(None), paid_services.c.tenant_id == uuid.UUID(str(tenant_id))),
                )
                .order_by(paid_services.c.tenant_id.is_(None))
                .limit(1)
            )
        )
        .mappings()
        .first()
    )


async def save_offer(conn: AsyncConnection, tenant_id: uuid.UUID | str, offer: Offer) -> uuid.UUID:
    """Insert, or refresh the tenant's entry of the same name (a server's price or recipient may change)."""
    values = {
        "name": offer.name,
        "url": offer.url,
        "transport": offer.transport,
        "tool": offer.tool,
        "asset": offer.asset,
        "price_atomic": offer.price_atomic,
        "network": offer.network,
        "pay_to": offer.pay_to,
        "description": offer.description,
        "metadata": offer.metadata,
        "discovered_at": sa.func.now(),
    }
    return await conn.scalar(
        pg_insert(paid_services)
        .values(
            id=uuid.uuid4(),
            tenant_id=uuid.UUID(str(tenant_id)),
            **values,
        )
        .on_conflict_do_update(index_elements=["tenant_id", "name"], set_=values)
        .returning(paid_services.c.id)
    )


def service_view(row, decimals: int, token: tuple[str | None, str] = (None, "")) -> dict:
    """`token` (address, symbol): the configured token, so a price in it reads "0.01 USDC" (`price_text`);
    a price in any other asset names the asset's address."""
    address, symbol = token
    asset = row["asset"]
    named = symbol if address and symbol and asset.lower() == address.lower() else asset
    price = format_amount(int(row["price_atomic"]), decimals)
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "url": row["url"],
        "transport": row["transport"],
        "tool": row["tool"],
        "description": row["description"],
        "asset": row["asset"],
        "price": price,
        "price_text": f"{price} {named}",
        "price_atomic": str(int(row["price_atomic"])),
        "network": row["network"],
        "pay_to": row["pay_to"],
        "shared": row["tenant_id"] is None,
    }
