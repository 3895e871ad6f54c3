"""Cancelling a payment before it is signed, one way for every door (POST /v1/payments/{id}/cancel, the MCP
tool cancel_payment): the requester or an admin asks the PaymentWorkflow's `cancel` Update, whose validator
refuses once signing began (409 `not_cancellable` with the reason); the workflow releases the reservation and
audits who cancelled and through which channel. A workflow already closed (by Temporal's own tools) answers
409 with the state, never 500."""

from __future__ import annotations

from temporalio.service import RPCError

from api.closed_workflows import closed_conflict, closed_status
from api.deps import Deps
from api.errors import ApiError
from api.payment_service import readable_payment
from paygent.db.accounts import Principal
from paygent.domain.channels import Channel
from paygent.domain.payment import PAYMENT_TERMINAL
from workflows import payment_types as pt
from workflows.payment_client import CancelRefused, request_cancel


async def cancel_payment(
    d: Deps,
    who: Principal,
    payment_id: str,
    *,
    channel: Channel,
    reason: str | None = None,
    request_id: str | None = None,
) -> dict:
    """{id, status, failure_reason} once cancelled; 404 when not the caller's to see, 403 when not theirs to
    cancel, 409 when already final, past signing, or its workflow closed."""
    row = await readable_payment(d, who, payment_id)
    if row["requested_by"] != who.user_id and not who.has_role("admin"):
        raise ApiError(403, "forbidden", "only the requester or an admin may cancel a payment")
    if row["status"] in PAYMENT_TERMINAL:
        raise ApiError(409, "not_cancellable", f"payment is already {row['status']}")
    try:
        state = await request_cancel(
            d.temporal,
            row["workflow_id"],
            pt.PaymentCancelRequest(actor=who.actor, channel=channel, reason=reason),
            update_id=request_id or None,
        )
    except CancelRefused as refused:
        raise ApiError(409, "not_cancellable", refused.reason) from None
    except RPCError:
        closed = await closed_status(d.temporal, row["workflow_id"])
        if closed is None:
            raise
        now = await readable_payment(d, who, payment_id)
        raise closed_conflict("payment", now["status"], closed) from None
    return {"id": payment_id, "status": state.status, "failure_reason": state.failure_reason}
