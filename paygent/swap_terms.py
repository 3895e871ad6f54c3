"""A checked, quoted swap as every door records and shows it: the quote view, the terms stored on the payment row
(`details.swap`) and the SwapWorkflow input fields read back from them.

The HTTP routes and MCP tools (api/swap_service.py) and agent runs (activities/agent_swaps.py) both build from
here, after the one input check and quote of paygent/swap_input.py, so a swap looks the same whoever asked for it.
"""

from __future__ import annotations

from typing import Any

from paygent.chain.uniswap import ROUTER_NAME
from paygent.domain.money import format_amount, format_money
from paygent.domain.swap import format_bps, swap_summary
from paygent.settings import Settings
from paygent.swap_input import SwapInput, SwapQuote, swap_policy


def quote_view(checked: SwapInput, q: SwapQuote) -> dict:
    out, dec_out, sym_out = q.quote.amount_out, checked.asset_out.decimals, checked.asset_out.symbol
    return {
        "from_asset": checked.asset_in.symbol,
        "to_asset": sym_out,
        "amount": format_amount(checked.amount_in, checked.asset_in.decimals),
        "amount_atomic": str(checked.amount_in),
        "amount_out": format_amount(out, dec_out),
        "amount_out_atomic": str(out),
        "min_amount_out": format_amount(q.quote.min_amount_out, dec_out),
        "min_amount_out_atomic": str(q.quote.min_amount_out),
        "slippage_bps": checked.slippage_bps,
        "price_impact_bps": q.quote.price_impact_bps,
        "price_impact": format_bps(q.quote.price_impact_bps),
        "route": [checked.asset_in.symbol, sym_out],
        "router": checked.router,
        "pair": q.pair,
        "block_number": q.block_number,
        "text": swap_summary(
            format_amount(checked.amount_in, checked.asset_in.decimals),
            checked.asset_in.symbol,
            format_amount(q.quote.min_amount_out, dec_out),
            sym_out,
            q.quote.price_impact_bps,
            ROUTER_NAME,
        ),
        "amount_out_text": format_money(out, dec_out, sym_out),
    }


def swap_terms(checked: SwapInput, q: SwapQuote) -> dict[str, Any]:
    """What the payment row keeps of a swap (`details.swap`): the output side, the route and the quote."""
    return {
        "to_asset": checked.asset_out.symbol,
        "token_out": checked.asset_out.address,
        "decimals_in": checked.asset_in.decimals,
        "decimals_out": checked.asset_out.decimals,
        "slippage_bps": checked.slippage_bps,
        "router": checked.router,
        "factory": checked.factory,
        "quoted_amount_out": str(q.quote.amount_out),
        "min_amount_out": str(q.quote.min_amount_out),
        "price_impact_bps": q.quote.price_impact_bps,
    }


def swap_request_fields(terms: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """SwapRequest's fields beside `payment`, from the row's terms and the server's swap policy."""
    policy = swap_policy(settings)
    return {
        "asset_out": terms["to_asset"],
        "token_out": terms["token_out"],
        "decimals_out": int(terms["decimals_out"]),
        "slippage_bps": int(terms["slippage_bps"]),
        "router": terms["router"],
        "factory": terms["factory"],
        "max_price_impact_bps": policy.max_price_impact_bps,
        "deadline_seconds": policy.deadline_seconds,
        "router_name": ROUTER_NAME,
    }
