"""MCP tools for swaps: quote_swap (a read: nothing reserved) and swap (governed like pay: limits, budget, grants,
approvals on the input amount). Same service, roles and audit as the HTTP routes (api/swap_service.py, channel
`mcp`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from api.mcp import schemas as o
from api.mcp.access import PAYS, READ, ToolAccess
from api.mcp.caller import caller
from api.swap_service import SwapSpec, quote, readable_swap, start_swap, swap_view
from paygent.domain.channels import Channel
from paygent.domain.text import SafeText

Amount = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$", description='Input amount in token units, e.g. "10"')]
Symbol = Annotated[SafeText, Field(max_length=16, description="Token symbol, e.g. USDC or EURC")]
Slippage = Annotated[
    int | None, Field(None, ge=0, le=10_000, description="Slippage bound in basis points (default 50; policy caps it)")
]


def register(tools: ToolAccess) -> None:
    @tools.tool(
        READ,
        description="Quote a token swap on the Uniswap V2 router: amount_out now, min_amount_out at the slippage "
        "bound (default 50 bps), price_impact_bps against the pool's reserves, and the route. Nothing is "
        "reserved or signed; the price can move before you swap.",
    )
    async def quote_swap(
        ctx: Context,
        wallet_id: Annotated[str, Field(description="The paying wallet's id")],
        from_asset: Symbol,
        to_asset: Symbol,
        amount: Amount,
        slippage_bps: Slippage = None,
    ) -> o.SwapQuote:
        d, who = caller(ctx)
        return o.SwapQuote.model_validate(
            await quote(d, who, SwapSpec(wallet_id, from_asset, to_asset, amount, slippage_bps))
        )

    @tools.tool(
        PAYS,
        description="Swap `amount` of from_asset for to_asset on the Uniswap V2 router, governed like a payment "
        "(your spending limits, budget and the wallet's approval tiers apply to the input amount). The "
        "router's allowance is exactly the amount, and the swap refuses to sell below the minimum output. "
        "Answers the swap's id and status; read it again with this tool's id through get_swap.",
    )
    async def swap(
        ctx: Context,
        wallet_id: Annotated[str, Field(description="The paying wallet's id")],
        from_asset: Symbol,
        to_asset: Symbol,
        amount: Amount,
        slippage_bps: Slippage = None,
        request_id: Annotated[
            SafeText | None,
            Field(None, max_length=200, description="Your idempotency key: repeat it to retry safely"),
        ] = None,
    ) -> o.Swap:
        d, who = caller(ctx)
        spec = SwapSpec(wallet_id, from_asset, to_asset, amount, slippage_bps)
        row, q = await start_swap(d, who, spec, request_id or str(uuid.uuid4()), channel=Channel.mcp)
        return o.Swap.model_validate({**swap_view(row, d.settings), "quote": q})

    @tools.tool(  # who /mcp admits, as get_payment: other roles read swaps at GET /v1/swaps/{id}
        READ,
        description="One of your swaps: status, amount_in, min_amount_out, amount_out (the real output, once "
        "settled), gas_used, tx_hash and failure_reason.",
    )
    async def get_swap(ctx: Context, swap_id: str) -> o.Swap:
        d, who = caller(ctx)
        return o.Swap.model_validate(swap_view(await readable_swap(d, who, swap_id), d.settings))
