"""What the agent tools that spend through a child workflow share: the paying tools (workflows/agent_pay.py, a child
PaymentWorkflow) and the `swap` tool (workflows/agent_swap.py, a child SwapWorkflow).

Runs in the AgentRunWorkflow's sandbox. Each tool records its payment or swap with an activity (id uuid5(run id,
tool call id)), starts the child as `payment-<that id>` with REJECT_DUPLICATE and ABANDON (no replay or retry
spends twice; a signed payment settles on its own when the run closes), reads the row and cancels through the
same activities, and, when the child was started by an earlier execution of the run, follows the row by polling.
These functions issue the same commands, with the same options, as each tool did on its own; what differs (the
child's type and input, its result, the summaries) the caller passes in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributes, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError, is_cancelled_exception

from paygent.domain.agent_run import RunEventType
from paygent.domain.payment import PAYMENT_TERMINAL, PAYMENT_WAITING, payment_workflow_id
from paygent.llm.types import ToolCall
from workflows import agent_types as at
from workflows import payment_types as pt
from workflows.activity_options import CANCEL_PAYMENT, DATABASE, PREPARE_PAYMENT

FIRST_POLL = timedelta(seconds=1)
PAYMENT_WAIT_LIMIT = timedelta(days=8)  # longer than any approval or time-lock window the payment may impose
RUN_CANCELLED = "the agent run was cancelled"

P = TypeVar("P")
F = TypeVar("F", bound="Outcome")


class Outcome(Protocol):
    """Where a followed payment or swap ended: a row's snapshot or the child's own state."""

    @property
    def status(self) -> str: ...

    @property
    def failure_reason(self) -> str | None: ...


class RunHost(Protocol):
    """What a paying tool needs from the run that owns it (AgentRunWorkflow), so this module never imports it."""

    inp: at.AgentRunInput
    payment_news: dict[str, list[pt.PaymentProgress]]  # pushed by child payments, by payment id

    async def emit(self, kind: RunEventType, data: dict[str, Any], *, honour_cancel: bool = True) -> None: ...

    def check_cancelled(self) -> None: ...

    def note_cancelled_payment(self, note: dict[str, Any]) -> None: ...


def decision_of(status: str, reason: str | None) -> str:
    """How the human decision went, read from where the payment went next."""
    text = f"{status} {reason or ''}".lower()
    for word in ("rejected", "expired", "cancelled"):
        if word in text:
            return word
    return "approved"


def cancelled_by_run(err: BaseException) -> bool:
    """`err` is the run's own cancellation reaching the tool (not the activity or child failing on its own)."""
    return workflow.cancellation_reason() is not None and is_cancelled_exception(err)


async def prepare(activity: str, inp: at.AgentRunInput, call: ToolCall, result_type: type[P], summary: str) -> P:
    """Record (and check) the tool call's payment or swap: `agent.prepare_payment` or `agent.prepare_swap`."""
    return await workflow.execute_activity(
        activity,
        at.PreparePayment.of(inp, call),
        result_type=result_type,
        **PREPARE_PAYMENT,
        summary=summary,
        # never cut short: whether the row exists must be known before a cancel is decided
        cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    )


async def start_child(
    workflow_name: str,
    req: Any,
    *,
    payment_id: str,
    result_type: type,
    search_attributes: SearchAttributes | TypedSearchAttributes,
    static_summary: str,
    static_details: str,
) -> workflow.ChildWorkflowHandle | None:
    """Start the child under the payment's workflow id, abandoned when the run closes; None when an earlier
    execution of this run started it already (the caller follows it through its row instead)."""
    try:
        return await workflow.start_child_workflow(
            workflow_name,
            req,
            id=payment_workflow_id(payment_id),
            result_type=result_type,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            cancellation_type=workflow.ChildWorkflowCancellationType.ABANDON,
            search_attributes=search_attributes,
            static_summary=static_summary,
            static_details=static_details,
        )
    except WorkflowAlreadyStartedError:
        return None


async def row_status(payment_id: str, noun: str) -> at.PaymentSnapshot:
    """The payment's (or swap's, `noun`) row as it stands."""
    return await workflow.execute_activity(
        at.ACT_PAYMENT_STATUS,
        payment_id,
        result_type=at.PaymentSnapshot,
        **DATABASE,
        summary=f"{noun.capitalize()} status",
    )


async def cancel(run: RunHost, payment_id: str, reason: str, noun: str) -> at.PaymentSnapshot:
    """Ask the payment (or swap, `noun`) to cancel, as the run's user; where it stands afterwards."""
    return await workflow.execute_activity(
        at.ACT_CANCEL_PAYMENT,
        at.CancelPayment(payment_id=payment_id, actor=run.inp.user_name, reason=reason),
        result_type=at.PaymentSnapshot,
        **CANCEL_PAYMENT,
        summary=f"Cancel the {noun}",
    )


async def poll_until_final(
    run: RunHost,
    child: workflow.ChildWorkflowHandle | None,
    bound: dict,
    *,
    payment_id: str,
    noun: str,
    max_poll: timedelta,
    child_final: Callable[[workflow.ChildWorkflowHandle], F],
    row_final: Callable[[at.PaymentSnapshot], F],
    awaiting: Callable[[dict | None], None] = lambda _: None,
    timeout_summary: str | None = None,
) -> tuple[F, bool]:
    """Poll the row (backing off from FIRST_POLL to `max_poll`) until the child ends, or, with no child to wait
    on, until the row is final; its approval wait becomes the run's `approval_requested` and `approval_decided`
    (`awaiting` is told the tool call waiting for a decision, or None). After PAYMENT_WAIT_LIMIT, a clean outcome:
    cancel if still possible and report where it stands. Returns the outcome and whether an approval was asked
    and its decision seen only through the outcome."""
    asked = decided = False
    delay = FIRST_POLL
    deadline = workflow.now() + PAYMENT_WAIT_LIMIT
    while True:
        run.check_cancelled()  # a cancel swallowed by a completed activity is honoured here
        if child is not None:
            try:
                await workflow.wait_condition(child.done, timeout=delay, timeout_summary=timeout_summary)
            except TimeoutError:
                pass
            if child.done():
                final = child_final(child)
                break
        else:
            await workflow.sleep(delay)
        status = await row_status(payment_id, noun)
        if child is None and status.status in PAYMENT_TERMINAL:
            final = row_final(status)
            break
        if status.status in PAYMENT_WAITING and not asked:
            asked = True
            awaiting(bound)
            await run.emit(RunEventType.approval_requested, {**bound, "status": status.status})
        elif asked and not decided and status.status not in PAYMENT_WAITING:
            decided = True
            awaiting(None)
            await run.emit(
                RunEventType.approval_decided,
                {**bound, "status": status.status, "decision": decision_of(status.status, status.failure_reason)},
            )
        if workflow.now() >= deadline:
            final = row_final(await cancel(run, payment_id, f"no outcome within {PAYMENT_WAIT_LIMIT}", noun))
            break
        delay = min(delay * 2, max_poll)
    if asked and not decided:
        awaiting(None)
        await run.emit(
            RunEventType.approval_decided,
            {**bound, "status": final.status, "decision": decision_of(final.status, final.failure_reason)},
        )
    return final, asked and not decided
