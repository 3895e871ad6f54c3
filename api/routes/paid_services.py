"""The paid-services registry over HTTP: list what the tenant's agents may pay for; discover a server's offers
(admins; see api/services_discovery.py)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.authz import Role, allow
from api.deps import Deps, deps
from api.services_discovery import discover
from paygent.db.accounts import Principal
from paygent.db.paid_services import list_services, service_view
from paygent.domain.channels import Channel
from paygent.domain.text import SafeText

router = APIRouter(prefix="/v1/paid-services", tags=["paid services"])


class DiscoverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: SafeText = Field(max_length=2000, description="An x402 resource (http) or an MCP endpoint (mcp)")
    transport: Literal["http", "mcp"] = "http"


@router.get("")
async def list_all(who: Principal = Depends(allow(*Role, agents=True)), d: Deps = Depends(deps)):
    async with d.engine.connect() as conn:
        rows = await list_services(conn, who.tenant_id)
    return {"items": [service_view(r, d.settings.token_decimals, d.settings.token) for r in rows]}


@router.post("/discover")
async def discover_offers(body: DiscoverBody, who: Principal = Depends(allow(Role.admin)), d: Deps = Depends(deps)):
    """Read the server's x402 offers into the registry; offers on another network or asset are refused."""
    return await discover(d, who, body.url, transport=body.transport, channel=Channel.api)
