"""The `swap` tool's activity: check, quote and record a swap an agent run asks for (`agent.prepare_swap`).

The same governed path as POST /v1/swaps (api/swap_service.py): the caller's `spend` grant on the run's wallet, the
one input check (paygent/swap_input.py `check_swap_input`), the quote and its guards (`quote_swap`), then the row
`record_payment` writes for every door (kind `swap`, its terms from paygent/swap_terms.py), with id uuid5(run id,
tool call id) and idempotency key `agent-run:<run>:<call>`, so a retried or replayed run finds the same swap. A
refusal returns the reason for the model and records, starts and signs nothing. The workflow then starts the
SwapWorkflow (workflows/agent_swap.py); its reservation, limits, budget and approval tiers are the swap's own.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.agent_tools import validation_message
from paygent.chain.rpc import async_web3
from paygent.db.accounts import get_wallet
from paygent.db.grants import has_grant
from paygent.db.payments import NewPayment, payment_request, record_payment
from paygent.domain.channels import Channel
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
        refused = f"invalid arguments for {p.call.name}"
        try:
            args = SwapArgs.model_validate(p.call.arguments)
        except ValidationError as exc:
            return at.PreparedSwap(error=f"{refused}: {validation_message(exc)}")
        if not p.wallet_id:
            return at.PreparedSwap(error="this run has no wallet to swap from")
        async with self.engine.connect() as conn:
            wallet = await get_wallet(conn, uuid.UUID(p.tenant_id), uuid.UUID(p.wallet_id))
            if wallet is None:
                return at.PreparedSwap(error="the run's wallet no longer exists")
            if not await has_grant(conn, uuid.UUID(p.user_id), wallet.id):  # grants can be withdrawn mid-run
                return at.PreparedSwap(error=f"{p.user_name} holds no spend grant on wallet {wallet.name}")
        try:  # the same check and quote as POST /v1/swaps; nothing is recorded for a refusal
            checked = check_swap_input(self.settings, args.from_asset, args.to_asset, args.amount, args.slippage_bps)
            q = await quote_swap(self.w3, self.settings, checked)
        except (InvalidInput, AssetUnavailable) as exc:
            return at.PreparedSwap(error=f"{refused}: {exc}")
        async with self.engine.begin() as conn:
            recorded = await record_payment(
                conn,
                NewPayment(
                    payment_id=uuid.UUID(at.agent_payment_id(p.run_id, p.call.id)),
                    tenant_id=uuid.UUID(p.tenant_id),
                    requested_by_id=uuid.UUID(p.user_id),
                    actor=p.user_name,
                    channel=Channel.temporal,
                    wallet_id=wallet.id,
                    idempotency_key=f"agent-run:{p.run_id}:{p.call.id}",
                    chain_id=self.settings.chain_id,
                    asset=checked.asset_in.symbol,
                    token_address=checked.asset_in.address,
                    to=checked.router,
                    amount_atomic=checked.amount_in,
                    memo=None,
                    kind=PaymentKind.swap,
                    swap=swap_terms(checked, q),
                    audit_extra={"agent_run_id": p.run_id, "tool_call_id": p.call.id},
                ),
            )
        if not recorded.matches:
            return at.PreparedSwap(error="a different payment is already recorded for this tool call")
        row = recorded.row
        request = sw.SwapRequest(
            payment=payment_request(row, wallet.address, requested_by=p.user_name, decimals=checked.asset_in.decimals),
            **swap_request_fields((row["details"] or {}).get("swap") or {}, self.settings),
        )
        return at.PreparedSwap(request=request, wallet_name=wallet.name, quote=quote_view(checked, q))
