"""The agent run's public contract: workflow input/result, activity names and payloads, event types, tools.

Pure pydantic and constants (the workflow sandbox imports this module; so do the API and the activities). The
workflow passes ids and short summaries through these models; the conversation itself stays in Postgres.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from paygent.domain.payment import PaymentRequest
from paygent.llm.types import ToolCall, ToolSpec
from workflows.swap_types import SwapRequest

WORKFLOW_NAME = "AgentRunWorkflow"
QUERY_STATE = "state"  # -> {"status", "step", "next_seq"}
DEFAULT_MAX_STEPS = 8
MAX_MAX_STEPS = 50

# Activity names (activities/agent_*.py); the workflow calls them by name and never imports activity code.
ACT_EMIT = "agent.emit_event"
ACT_LLM_STEP = "agent.llm_step"
ACT_RUN_TOOL = "agent.run_tool"
ACT_RECORD_TOOL_RESULT = "agent.record_tool_result"
ACT_PREPARE_PAYMENT = "agent.prepare_payment"
ACT_PAYMENT_STATUS = "agent.payment_status"
ACT_CANCEL_PAYMENT = "agent.cancel_payment"
ACT_PREPARE_SWAP = "agent.prepare_swap"

# workflow.patched id: runs that follow their payments through pushed `payment_progress` Signals instead of
# polling the payment's row (runs that were polling when this shipped keep polling when replayed).
PATCH_PAYMENT_PUSH = "agent-run-payment-push-v1"
# workflow.patched id: a run's child payment starts with the readable amount (PaygentAmountText) among its search
# attributes, which are part of the start-child command.
PATCH_AMOUNT_TEXT = "agent-run-payment-amount-text"
# workflow.patched id: the `swap` tool runs a child SwapWorkflow (workflows/agent_swap.py); asked only for a tool
# call named `swap`, which before went to `agent.run_tool` (and was refused there as an unknown tool).
PATCH_SWAP_TOOL = "agent-run-swap-tool"
# workflow.patched id: the `swap` tool follows its child SwapWorkflow through pushed `payment_progress` Signals, as a
# payment (approval_progress, payment_time_locked); runs that were polling the swap's row keep polling on replay.
PATCH_SWAP_PUSH = "agent-run-swap-push-v1"
SWAP_TOOL = "swap"

# A payment made by a run's tool call has an id derived from (run id, tool call id): a replayed or retried run
# computes the same payment, hence the same child workflow id, and can never pay twice.
AGENT_PAYMENT_NAMESPACE = uuid.UUID("0b7d8f6e-3c2a-5e1f-9a4b-6d5c4e3f2a10")


def agent_workflow_id(run_id: str) -> str:
    return f"agent-run-{run_id}"


def agent_payment_id(run_id: str, tool_call_id: str) -> str:
    return str(uuid.uuid5(AGENT_PAYMENT_NAMESPACE, f"{run_id}:{tool_call_id}"))


class AgentRunInput(BaseModel):
    """Who asked what, where. `next_step`/`next_seq` carry progress across continue-as-new."""

    run_id: str
    tenant_id: str
    user_id: str
    user_name: str
    thread_id: str
    message_id: str
    wallet_id: str | None = None
    max_steps: int = Field(DEFAULT_MAX_STEPS, ge=1, le=MAX_MAX_STEPS)
    tools: bool = True  # False: a chat turn, the model is offered no tools (the default keeps old runs as they were)
    next_step: int = 1
    next_seq: int = 1


class AgentRunResult(BaseModel):
    run_id: str
    status: str
    steps: int
    answer_excerpt: str | None = None


class LlmStepInput(BaseModel):
    run_id: str
    step: int
    tools: bool = True


class LlmStepResult(BaseModel):
    """The step's outcome, small: tool calls to run, or the id of the stored final answer plus an excerpt."""

    step: int
    message_id: str
    tool_calls: list[ToolCall] = Field(default_factory=list)
    text_excerpt: str | None = None
    provider: str
    model: str
    fallback_from: str | None = None
    fallback_reason: str | None = None
    reused: bool = False  # True when the step had already been answered and stored (a retry after a crash)
    understood: bool = True  # False when the planner could not read the request (it answered with help)


class ToolInvocation(BaseModel):
    run_id: str
    tenant_id: str
    user_id: str
    wallet_id: str | None = None
    call: ToolCall


class ToolOutcome(BaseModel):
    """A tool's result as the text the LLM will read (usually JSON), and whether the tool succeeded."""

    ok: bool
    text: str


class ToolResultRecord(BaseModel):
    run_id: str
    step: int
    seq: int  # the `tool_completed` event written in the same transaction
    call: ToolCall
    outcome: ToolOutcome


class PreparePayment(BaseModel):
    run_id: str
    tenant_id: str
    user_id: str
    user_name: str
    wallet_id: str | None
    call: ToolCall

    @classmethod
    def of(cls, inp: AgentRunInput, call: ToolCall) -> PreparePayment:
        """The paying tool call `call` of run `inp`, as the prepare activities (payment or swap) take it."""
        return cls(
            run_id=inp.run_id,
            tenant_id=inp.tenant_id,
            user_id=inp.user_id,
            user_name=inp.user_name,
            wallet_id=inp.wallet_id,
            call=call,
        )


class PreparedPayment(BaseModel):
    """Either a recorded payment to start as a child workflow, or the reason it cannot be made (for the LLM)."""

    request: PaymentRequest | None = None
    status: str | None = None  # the row's status when it already existed (a retried run)
    error: str | None = None
    wallet_name: str | None = None
    amount_label: str | None = None


class PreparedSwap(BaseModel):
    """Either a recorded, quoted swap to start as a child SwapWorkflow, or why not (for the LLM; nothing recorded)."""

    request: SwapRequest | None = None
    error: str | None = None
    wallet_name: str | None = None
    quote: dict[str, Any] = Field(default_factory=dict)  # paygent/swap_terms.py `quote_view`


class PaymentSnapshot(BaseModel):
    payment_id: str
    status: str
    tx_hash: str | None = None
    block_number: int | None = None
    failure_reason: str | None = None
    amount_atomic: int | None = None  # for x402, the price the server asked (once probed)
    to: str | None = None
    x402: dict[str, Any] | None = None  # url, outcome, response_status, body_excerpt (never the signature)


class CancelPayment(BaseModel):
    payment_id: str
    actor: str
    reason: str


def _spec(name: str, description: str, required: tuple[str, ...] = (), **props: dict) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=description,
        input_schema={"type": "object", "properties": props, "required": list(required)},
    )


_STR = {"type": "string"}
TOOLS: list[ToolSpec] = [
    _spec("wallet_balance", "The agent wallet's token balance."),
    _spec(
        "pay",
        "Pay a token amount to an address. Spending limits and approvals apply; amounts are decimal "
        'strings such as "5" or "0.25".',
        ("to", "amount", "asset"),
        to=_STR,
        amount=_STR,
        asset=_STR,
        memo=_STR,
    ),
    _spec(
        "x402_fetch",
        "Fetch a URL, paying via x402 up to a cap (decimal string, USDC).",
        ("url", "max_amount"),
        url=_STR,
        max_amount=_STR,
    ),
    _spec(
        "call_paid_tool",
        "Call a paid MCP tool from list_paid_services (transport mcp), paying its x402 price up "
        "to a cap (decimal string, USDC); limits and approvals apply.",
        ("service", "max_amount"),
        service=_STR,
        max_amount=_STR,
        arguments={"type": "object"},
    ),
    _spec(
        SWAP_TOOL,
        "Swap a token amount for another token on the chain's Uniswap V2 router (e.g. USDC to EURC). Spending "
        'limits and approvals apply to the input amount; amounts are decimal strings such as "10".',
        ("from_asset", "to_asset", "amount"),
        from_asset=_STR,
        to_asset=_STR,
        amount=_STR,
        slippage_bps={"type": "integer"},
    ),
    _spec(
        "memory_set",
        "Remember a value under a key (optional ttl_seconds, optional namespace).",
        ("key", "value"),
        key=_STR,
        value=_STR,
        namespace=_STR,
        ttl_seconds={"type": "integer"},
    ),
    _spec("memory_get", "Recall the value stored under a key.", ("key",), key=_STR, namespace=_STR),
    _spec("memory_search", "List remembered keys starting with a prefix.", ("prefix",), prefix=_STR, namespace=_STR),
    _spec("list_paid_services", "List the paid services the agent may use."),
    _spec("health", "Check that the control plane is healthy."),
]
SYSTEM_PROMPT = (
    "You are Paygent's agent. You act for one user and may spend money from their wallet only through the "
    "`pay`, `x402_fetch`, `call_paid_tool` and `swap` tools, where spending limits and human approvals apply. "
    "Amounts are decimal strings (never floats). If a payment is rejected, expires or is refused, say so "
    "plainly; never retry it on your own. When a payment confirms, give its transaction hash."
)
