"""What a payment tool answers: the payment as the HTTP API shows it, who must approve it while it waits, and
a refusal as a tool error naming the rule. Waiting is bounded and reports progress as the status moves."""

from __future__ import annotations

import asyncio
import time

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from temporalio.service import RPCError

from api.deps import Deps
from api.payment_service import payment_view, readable_payment
from paygent.db.accounts import Principal
from paygent.domain.payment import PAYMENT_TERMINAL, PaymentStatus
from workflows.approval_client import get_state

POLL_SECONDS = 0.25
FAILED_STATUSES = {
    PaymentStatus.refused: "refused",
    PaymentStatus.failed: "failed",
    PaymentStatus.cancelled: "cancelled",
    PaymentStatus.reorged_out: "reorged out",
}
SETTLED = frozenset(PAYMENT_TERMINAL)
DECIDED = frozenset(
    PAYMENT_TERMINAL | {PaymentStatus.awaiting_approval, PaymentStatus.time_locked}
)  # past the limits check, or done
MOVED = frozenset(DECIDED | {PaymentStatus.signing, PaymentStatus.submitted})
# The approval workflow starts just after the payment says awaiting_approval: its state may take a moment.
APPROVAL_STATE_WAIT_SECONDS = 5.0


async def approval_needed(d: Deps, payment_id: str) -> dict | None:
    """Who must approve and how many, from the approval workflow's `state` Query (None when it has none)."""
    deadline = time.monotonic() + APPROVAL_STATE_WAIT_SECONDS
    while True:
        try:
            view = await get_state(d.temporal, payment_id)
            break
        except RPCError:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(POLL_SECONDS)
    return {
        "approval_id": view.approval_id,
        "status": view.status,
        "approvers": list(view.tier.approvers),
        "awaiting": view.awaiting,
        "approvals_needed": view.approvals_needed,
        "approvals_had": view.approvals_had,
        "approved_by": view.approved_by,
        "expires_at": view.expires_at.isoformat(),
        "timelock_until": view.timelock_until.isoformat() if view.timelock_until else None,
        "how": approval_hint(view.approval_id, view.approvals_needed, list(view.tier.approvers)),
    }


def approval_hint(approval_id: str, needed: int, approvers: list[str]) -> str:
    """What a person does next; every command named here is run by tests/mcp/test_hints.py."""
    return (
        f"{needed} of {', '.join(approvers)} must approve it: an approver runs "
        f"`paygent approve {approval_id} --as <approver>` (or POST /v1/approvals/{approval_id}/approve); "
        f"`paygent approvals show {approval_id} --as <approver>` shows where it stands. Then call wait_for_payment"
    )


async def view(d: Deps, row) -> dict:
    """The payment as the HTTP API shows it, plus who must approve it while it awaits approval."""
    shown = payment_view(row, d.settings)
    if row["status"] == PaymentStatus.awaiting_approval:
        shown["approval"] = await approval_needed(d, str(row["id"]))
    return shown


async def answer(d: Deps, row) -> dict:
    """A paying tool's answer; a refused, failed or cancelled payment is a tool error naming why."""
    if row["status"] in FAILED_STATUSES:
        raise ToolError(f"payment {row['id']} {FAILED_STATUSES[row['status']]}: {row['failure_reason']}")
    return await view(d, row)


async def wait(
    d: Deps, who: Principal, payment_id: str, *, until: frozenset[str], timeout: float, ctx: Context | None = None
):
    """The payment's row once its status is in `until` or `timeout` seconds passed, whichever is first;
    every status change is sent as a progress notification when the client asked for them."""
    deadline = time.monotonic() + timeout
    seen, step = None, 0
    while True:
        row = await readable_payment(d, who, payment_id)
        if row["status"] != seen:
            seen, step = row["status"], step + 1
            if ctx is not None:
                await ctx.report_progress(step, None, f"payment {payment_id}: {seen}")
        if seen in until or time.monotonic() >= deadline:
            return row
        await asyncio.sleep(POLL_SECONDS)
