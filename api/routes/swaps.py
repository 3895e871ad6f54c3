"""Swaps (issue 21): GET /v1/swaps/quote reads a quote (nothing reserved); POST /v1/swaps starts a SwapWorkflow
exactly once per (tenant, principal, Idempotency-Key); GET /v1/swaps/{id} reads one back. Work in
api/swap_service.py, shared with the MCP tools."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.authz import Role, allow
from api.deps import Deps, deps
from api.payment_service import check_idempotency_key
from api.swap_service import SwapSpec, quote, readable_swap, start_swap, swap_view
from paygent.db.accounts import Principal
from paygent.domain.channels import Channel
from paygent.domain.text import SafeText
from paygent.payment_input import DecimalText

router = APIRouter(prefix="/v1/swaps", tags=["swaps"])


class SwapCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wallet_id: SafeText = Field(description="The paying wallet's id")
    from_asset: SafeText = Field(description="Token symbol sold, e.g. USDC")
    to_asset: SafeText = Field(description="Token symbol bought, e.g. EURC")
    amount: DecimalText = Field(description='Input amount, a decimal string in token units, e.g. "10"')
    slippage_bps: int | None = Field(
        None, ge=0, le=10_000, description="Slippage bound in basis points (default 50; policy caps it)"
    )
    memo: SafeText | None = Field(None, max_length=500)


@router.get("/quote")
async def get_quote(
    wallet_id: str,
    from_asset: str,
    to_asset: str,
    amount: str,
    slippage_bps: int | None = Query(None, ge=0, le=10_000, description="default 50"),
    who: Principal = Depends(allow(Role.requester, agents=True)),
    d: Deps = Depends(deps),
):
    """The router's quote (getAmountsOut and the reserves): amount_out, min_amount_out, price_impact_bps, route."""
    return await quote(d, who, SwapSpec(wallet_id, from_asset, to_asset, amount, slippage_bps))


@router.post("", status_code=202)
async def create_swap(
    body: SwapCreate,
    who: Principal = Depends(allow(Role.requester, agents=True)),
    d: Deps = Depends(deps),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    key = check_idempotency_key(idempotency_key)
    spec = SwapSpec(body.wallet_id, body.from_asset, body.to_asset, body.amount, body.slippage_bps, body.memo)
    row, q = await start_swap(d, who, spec, key, channel=Channel.api)
    return JSONResponse(
        {"id": str(row["id"]), "status": row["status"], "workflow_id": row["workflow_id"], "quote": q},
        status_code=202,
    )


@router.get("/{swap_id}")
async def get_swap(swap_id: str, who: Principal = Depends(allow(*Role, agents=True)), d: Deps = Depends(deps)):
    return swap_view(await readable_swap(d, who, swap_id), d.settings)
