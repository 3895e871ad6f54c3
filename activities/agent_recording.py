"""What the agent's recording tools share: `pay`, `x402_fetch`, `call_paid_tool` (activities/agent_payments.py) and
`swap` (activities/agent_swaps.py) spend from the run's wallet under the caller's `spend` grant, and record the
row `record_payment` writes for every door once per tool call: id uuid5(run id, tool call id), idempotency key
`agent-run:<run>:<call>`, channel `temporal`, the run and tool call in the audit entry. A retried or replayed run
finds the same row instead of making another.

A refusal is a `ToolRefused` whose text the model reads; the activity returns it as its result's `error`, and
nothing is recorded, started or signed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from activities.agent_tools import validation_message
from paygent.db.accounts import get_wallet
from paygent.db.grants import has_grant
from paygent.db.payments import NewPayment, record_payment
from paygent.domain.channels import Channel
from workflows import agent_types as at

R = TypeVar("R")


class ToolRefused(Exception):
    """Why the tool call is refused, for the model to read; nothing was recorded for it."""


async def or_refusal(prepared: Awaitable[R], result: Callable[..., R]) -> R:
    """The prepare activity's result: what `prepared` returns, or `result(error=...)` when it refuses."""
    try:
        return await prepared
    except ToolRefused as refusal:
        return result(error=str(refusal))


def invalid_arguments(p: at.PreparePayment, why: object) -> ToolRefused:
    return ToolRefused(f"invalid arguments for {p.call.name}: {why}")


def tool_arguments(p: at.PreparePayment, parse: Callable[[], R]) -> R:
    """The model's arguments parsed by `parse`; arguments of the wrong shape are refused, naming what is wrong."""
    try:
        return parse()
    except ValidationError as exc:
        raise invalid_arguments(p, validation_message(exc)) from None


async def run_wallet(conn: AsyncConnection, p: at.PreparePayment, verb: str):
    """The run's wallet, if it still exists and the caller still holds a spend grant on it (grants can be withdrawn
    mid-run); `verb` names what the tool does with it ("pay", "swap")."""
    if not p.wallet_id:
        raise ToolRefused(f"this run has no wallet to {verb} from")
    wallet = await get_wallet(conn, uuid.UUID(p.tenant_id), uuid.UUID(p.wallet_id))
    if wallet is None:
        raise ToolRefused("the run's wallet no longer exists")
    if not await has_grant(conn, uuid.UUID(p.user_id), wallet.id):
        raise ToolRefused(f"{p.user_name} holds no spend grant on wallet {wallet.name}")
    return wallet


async def record_tool_call(
    conn: AsyncConnection, p: at.PreparePayment, *, wallet_id: uuid.UUID, chain_id: int, **terms: Any
) -> RowMapping:
    """Record the tool call's payment (or swap) once, in `conn`'s transaction, and return the stored row. `terms`
    are the kind's own NewPayment fields (asset, token_address, to, amount_atomic, memo, kind, and url and
    mcp_call, or swap). Another request already recorded for this tool call is refused."""
    recorded = await record_payment(
        conn,
        NewPayment(
            payment_id=uuid.UUID(at.agent_payment_id(p.run_id, p.call.id)),
            tenant_id=uuid.UUID(p.tenant_id),
            requested_by_id=uuid.UUID(p.user_id),
            actor=p.user_name,
            channel=Channel.temporal,
            wallet_id=wallet_id,
            idempotency_key=f"agent-run:{p.run_id}:{p.call.id}",
            chain_id=chain_id,
            audit_extra={"agent_run_id": p.run_id, "tool_call_id": p.call.id},
            **terms,
        ),
    )
    if not recorded.matches:
        raise ToolRefused("a different payment is already recorded for this tool call")
    return recorded.row
