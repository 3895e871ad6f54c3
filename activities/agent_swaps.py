"""The `swap` tool's activity: check, quote and record a swap an agent run asks for (`agent.prepare_swap`).

The same governed path as POST /v1/swaps (api/swap_service.py): the caller's `spend` grant on the run's wallet, the
one input check (paygent/swap_input.py `check_swap_input`), the quote and its guards (`quote_swap`), then the row
`record_payment` writes for every door (kind `swap`, its terms from paygent/swap_terms.py), with id uuid5(run id,
tool call id) and idempotency key `agent-run:<run>:<call>`, so a retried or replayed run finds the same swap. A
refusal returns the reason for the model and records, starts and signs nothing. The workflow then starts the
SwapWorkflow (workflows/agent_swap.py); its reservation, limits, budget and approval tiers are the swap's own.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.agent_recording import invalid_arguments, or_refusal, record_tool_call, run_wallet, tool_arguments
from paygent.chain.rpc import async_web3
from paygent.db.payments import payment_request
from paygent.domain.errors import InvalidInput
from paygent.domain.payment import PaymentKind
from paygent.domain.text import SafeText
from paygent.payment_input import AssetUnavailable, DecimalText
from paygent.settings import Settings
from paygent.swap_input import check_swap_input, quote_swap
from paygent.swap_terms import quote_view, swap_request_fields, swap_terms
from workflows import agent_types as at
from workflows import swap_types as sw


class SwapArgs(BaseModel):
    """Strict: an amount sent as a JSON number is refused, never rounded through a float."""

    model_config = ConfigDict(extra="forbid", strict=True)
    from_asset: SafeText
    to_asset: SafeText
    amount: DecimalText
    slippage_bps: int | None = None


class AgentSwapActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self.w3 = async_web3(settings.rpc_url)

    @activity.defn(name=at.ACT_PREPARE_SWAP)
    async def prepare_swap(self, p: at.PreparePayment) -> at.PreparedSwap:
        return await or_refusal(self._prepare(p), at.PreparedSwap)

    async def _prepare(self, p: at.PreparePayment) -> at.PreparedSwap:
        args = tool_arguments(p, lambda: SwapArgs.model_validate(p.call.arguments))
        async with self.engine.connect() as conn:
            wallet = await run_wallet(conn, p, "swap")
        try:  # the same check and quote as POST /v1/swaps; nothing is recorded for a refusal
            checked = check_swap_input(self.settings, args.from_asset, args.to_asset, args.amount, args.slippage_bps)
            q = await quote_swap(self.w3, self.settings, checked)
        except (InvalidInput, AssetUnavailable) as exc:
            raise invalid_arguments(p, exc) from None
        async with self.engine.begin() as conn:
            row = await record_tool_call(
                conn,
                p,
                wallet_id=wallet.id,
                chain_id=self.settings.chain_id,
                asset=checked.asset_in.symbol,
                token_address=checked.asset_in.address,
                to=checked.router,
                amount_atomic=checked.amount_in,
                memo=None,
                kind=PaymentKind.swap,
                swap=swap_terms(checked, q),
            )
        request = sw.SwapRequest(
            payment=payment_request(row, wallet.address, requested_by=p.user_name, decimals=checked.asset_in.decimals),
            **swap_request_fields((row["details"] or {}).get("swap") or {}, self.settings),
        )
        return at.PreparedSwap(request=request, wallet_name=wallet.name, quote=quote_view(checked, q))
