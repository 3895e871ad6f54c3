"""Stub activities for the workflow unit tests, registered under the production activity names.

Each stub records its call (activity name, argument, the tenant the worker's interceptor scoped it to) and answers
from a per-test script, so a test can drive every branch of PaymentWorkflow and AgentRunWorkflow on the
time-skipping server with no Postgres, chain or LLM. The worker is built like the deployed one (workers/main.py):
the same workflows, sandbox runner and interceptors; the client brings pydantic_data_converter.

A script maps an activity name to an answer: a value, an exception (raised), a function of the argument (its
result, awaited if it is a coroutine), or `Turns(...)` of those (one per call, the last one repeating).
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from paygent.db.tenancy import current_tenant
from paygent.domain import agent_run as ar
from paygent.domain import payment as dp
from paygent.domain.approval_policy import ApprovalPolicy, default_dev_policy
from paygent.domain.payment import PaymentStatus
from workers.main import WORKFLOWS, interceptors, workflow_runner
from workflows import agent_types as at
from workflows import approval_types as ap
from workflows import payment_types as pt
from workflows import x402_types as x

UNIT = 10**6  # USDC has 6 decimals
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
RECIPIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
SELLER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
TX_HASH = "0x" + "ab" * 32
X402_TX = "0x" + "cd" * 32
VALID_BEFORE = 1_900_000_000


def payment_request(tokens: int | Decimal = 50, **over: Any) -> dp.PaymentRequest:
    """A transfer by alice from the dev policy's tenant; `tokens` picks the approval tier (<=100: none)."""
    fields: dict[str, Any] = dict(
        payment_id=str(uuid.uuid4()),
        tenant_id=str(uuid.uuid4()),
        wallet_id=str(uuid.uuid4()),
        wallet_address="0x90F79bf6EB2c4f870365E785982E1f101E93b906",
        requested_by="alice",
        requested_by_id=str(uuid.uuid4()),
        chain_id=31337,
        asset="USDC",
        decimals=6,
        token_address=TOKEN,
        to=RECIPIENT,
        amount_atomic=int(Decimal(str(tokens)) * UNIT),
        memo="invoice 7",
    )
    return dp.PaymentRequest(**{**fields, **over})


def _prepared(p: at.PreparePayment) -> at.PreparedPayment:
    """What agent.prepare_payment records for a `pay` call: the payment id derived from (run, tool call)."""
    request = payment_request(
        Decimal(p.call.arguments.get("amount", "50")),
        payment_id=at.agent_payment_id(p.run_id, p.call.id),
        tenant_id=p.tenant_id,
        requested_by=p.user_name,
        requested_by_id=p.user_id,
        to=p.call.arguments.get("to", RECIPIENT),
    )
    return at.PreparedPayment(request=request, wallet_name="treasury", amount_label=p.call.arguments.get("amount"))


DEFAULTS: dict[str, Any] = {
    pt.ACT_MARK_STATUS: None,
    pt.ACT_RESERVE: pt.ReserveOutcome(reserved=True),
    pt.ACT_RESERVE_WITH_POLICY: pt.ReserveOutcome(reserved=True, policy=default_dev_policy()),
    pt.ACT_SIGN_AND_SEND: lambda r: pt.SignedTransfer(payment_id=r.payment_id, tx_hash=TX_HASH, nonce=7, reused=False),
    pt.ACT_SIGN: lambda r: pt.SignedTransfer(payment_id=r.payment_id, tx_hash=TX_HASH, nonce=7, reused=False),
    pt.ACT_BROADCAST: TX_HASH,
    pt.ACT_AWAIT_RECEIPT: pt.ReceiptResult(tx_hash=TX_HASH, succeeded=True, block_number=42, gas_used=51_000),
    pt.ACT_SETTLE: None,
    pt.ACT_RECEIPT_GAVE_UP: pt.ReceiptResult(
        tx_hash=TX_HASH, succeeded=False, block_number=None, gas_used=0, pending=True
    ),
    ap.ACT_LOAD_POLICY: default_dev_policy(),
    ap.ACT_RECORD: 1,
    ap.ACT_PUBLISH: [],
    ap.ACT_WEBHOOK: 200,
    ap.ACT_SIGNAL_GATE: True,
    x.ACT_X402_PROBE: lambda r: x.X402ProbeResult(
        payment_id=r.payment_id, payment_required=True, amount_atomic=UNIT // 100, asset=TOKEN, pay_to=SELLER
    ),
    x.ACT_X402_SIGN: lambda r: x.X402SignResult(
        payment_id=r.payment_id,
        payment_identifier="pay_1",
        payer=RECIPIENT,
        authorization_nonce="0x01",
        amount_atomic=UNIT // 100,
        pay_to=SELLER,
        asset=TOKEN,
        valid_before=VALID_BEFORE,
        reused=False,
    ),
    x.ACT_X402_SEND: lambda r: x402_sent(r.payment_id, x.PAID),
    at.ACT_EMIT: None,
    at.ACT_LLM_STEP: lambda s: answer(s.step, "done"),
    at.ACT_RUN_TOOL: at.ToolOutcome(ok=True, text='{"balance": "1000"}'),
    at.ACT_RECORD_TOOL_RESULT: None,
    at.ACT_PREPARE_PAYMENT: _prepared,
    at.ACT_PAYMENT_STATUS: lambda pid: at.PaymentSnapshot(payment_id=pid, status=PaymentStatus.confirmed),
    at.ACT_CANCEL_PAYMENT: lambda c: at.PaymentSnapshot(
        payment_id=c.payment_id, status=PaymentStatus.cancelled, failure_reason=c.reason
    ),
}


def x402_sent(payment_id: str, outcome: str) -> x.X402SendResult:
    settled = outcome in x.SETTLED_OUTCOMES
    return x.X402SendResult(
        payment_id=payment_id,
        outcome=outcome,
        settled=settled,
        status_code=200,
        transaction=X402_TX if settled else None,
        amount_atomic=UNIT // 100,
        pay_to=SELLER,
        payer=RECIPIENT,
        attempts=1,
    )


def answer(step: int, text: str) -> at.LlmStepResult:
    return at.LlmStepResult(step=step, message_id=f"m{step}", text_excerpt=text, provider="offline", model="stub")


class Turns(list):
    """Answers for successive calls of one activity; the last one answers every later call."""


@dataclass
class Call:
    name: str
    arg: Any
    tenant: str | None


class Stubs:
    def __init__(self, script: dict[str, Any] | None = None) -> None:
        self.script = {**DEFAULTS, **(script or {})}
        self.calls: list[Call] = []

    def names(self, *only: str) -> list[str]:
        return [c.name for c in self.calls if not only or c.name in only]

    def args(self, name: str) -> list[Any]:
        return [c.arg for c in self.calls if c.name == name]

    async def _answer(self, name: str, arg: Any = None) -> Any:
        self.calls.append(Call(name, arg, current_tenant()))
        found = self.script[name]
        if isinstance(found, Turns):
            found = found.pop(0) if len(found) > 1 else found[0]
        if callable(found) and not isinstance(found, type):
            found = found(arg)
            if inspect.isawaitable(found):
                found = await found
        if isinstance(found, BaseException):
            raise found
        return found

    @activity.defn(name=pt.ACT_MARK_STATUS)
    async def mark_status(self, change: pt.StatusChange) -> None:
        return await self._answer(pt.ACT_MARK_STATUS, change)

    @activity.defn(name=pt.ACT_RESERVE)
    async def reserve(self, req: dp.PaymentRequest) -> pt.ReserveOutcome:
        return await self._answer(pt.ACT_RESERVE, req)

    @activity.defn(name=pt.ACT_RESERVE_WITH_POLICY)
    async def reserve_with_policy(self, req: dp.PaymentRequest) -> pt.ReserveOutcome:
        return await self._answer(pt.ACT_RESERVE_WITH_POLICY, req)

    @activity.defn(name=pt.ACT_SIGN_AND_SEND)
    async def sign_and_send(self, req: dp.PaymentRequest) -> pt.SignedTransfer:
        return await self._answer(pt.ACT_SIGN_AND_SEND, req)

    @activity.defn(name=pt.ACT_SIGN)
    async def sign_transfer(self, req: dp.PaymentRequest) -> pt.SignedTransfer:
        return await self._answer(pt.ACT_SIGN, req)

    @activity.defn(name=pt.ACT_BROADCAST)
    async def broadcast(self, payment_id: str) -> str:
        return await self._answer(pt.ACT_BROADCAST, payment_id)

    @activity.defn(name=pt.ACT_AWAIT_RECEIPT)
    async def await_receipt(self, req: dp.PaymentRequest) -> pt.ReceiptResult:
        return await self._answer(pt.ACT_AWAIT_RECEIPT, req)

    @activity.defn(name=pt.ACT_SETTLE)
    async def settle(self, s: pt.Settlement) -> None:
        return await self._answer(pt.ACT_SETTLE, s)

    @activity.defn(name=pt.ACT_RECEIPT_GAVE_UP)
    async def receipt_wait_gave_up(self, req: dp.PaymentRequest) -> pt.ReceiptResult:
        return await self._answer(pt.ACT_RECEIPT_GAVE_UP, req)

    @activity.defn(name=ap.ACT_LOAD_POLICY)
    async def load_policy(self, request: ap.PolicyRequest) -> ApprovalPolicy:
        return await self._answer(ap.ACT_LOAD_POLICY, request)

    @activity.defn(name=ap.ACT_RECORD)
    async def record_decision(self, record: ap.DecisionRecord) -> int:
        return await self._answer(ap.ACT_RECORD, record)

    @activity.defn(name=ap.ACT_PUBLISH)
    async def publish_event(self, event: ap.ApprovalEvent) -> list[str]:
        return await self._answer(ap.ACT_PUBLISH, event)

    @activity.defn(name=ap.ACT_WEBHOOK)
    async def deliver_webhook(self, delivery: ap.WebhookDelivery) -> int:
        return await self._answer(ap.ACT_WEBHOOK, delivery)

    @activity.defn(name=ap.ACT_SIGNAL_GATE)
    async def signal_decisions_allowed(self) -> bool:
        return await self._answer(ap.ACT_SIGNAL_GATE)

    @activity.defn(name=x.ACT_X402_PROBE)
    async def x402_probe(self, req: x.X402ProbeRequest) -> x.X402ProbeResult:
        return await self._answer(x.ACT_X402_PROBE, req)

    @activity.defn(name=x.ACT_X402_SIGN)
    async def x402_sign(self, req: x.X402SignRequest) -> x.X402SignResult:
        return await self._answer(x.ACT_X402_SIGN, req)

    @activity.defn(name=x.ACT_X402_SEND)
    async def x402_send(self, req: x.X402SendRequest) -> x.X402SendResult:
        return await self._answer(x.ACT_X402_SEND, req)

    @activity.defn(name=at.ACT_EMIT)
    async def emit_event(self, event: ar.EmitEvent) -> None:
        return await self._answer(at.ACT_EMIT, event)

    @activity.defn(name=at.ACT_LLM_STEP)
    async def llm_step(self, inp: at.LlmStepInput) -> at.LlmStepResult:
        return await self._answer(at.ACT_LLM_STEP, inp)

    @activity.defn(name=at.ACT_RUN_TOOL)
    async def run_tool(self, inv: at.ToolInvocation) -> at.ToolOutcome:
        return await self._answer(at.ACT_RUN_TOOL, inv)

    @activity.defn(name=at.ACT_RECORD_TOOL_RESULT)
    async def record_tool_result(self, rec: at.ToolResultRecord) -> None:
        return await self._answer(at.ACT_RECORD_TOOL_RESULT, rec)

    @activity.defn(name=at.ACT_PREPARE_PAYMENT)
    async def prepare_payment(self, p: at.PreparePayment) -> at.PreparedPayment:
        return await self._answer(at.ACT_PREPARE_PAYMENT, p)

    @activity.defn(name=at.ACT_PAYMENT_STATUS)
    async def payment_status(self, payment_id: str) -> at.PaymentSnapshot:
        return await self._answer(at.ACT_PAYMENT_STATUS, payment_id)

    @activity.defn(name=at.ACT_CANCEL_PAYMENT)
    async def cancel_payment(self, c: at.CancelPayment) -> at.PaymentSnapshot:
        return await self._answer(at.ACT_CANCEL_PAYMENT, c)

    def activities(self) -> list[Any]:
        s = self
        return [
            *(s.mark_status, s.reserve, s.sign_transfer, s.broadcast, s.await_receipt, s.settle),
            s.receipt_wait_gave_up,
            *(s.reserve_with_policy, s.sign_and_send),
            *(s.load_policy, s.record_decision, s.publish_event, s.deliver_webhook, s.signal_decisions_allowed),
            *(s.x402_probe, s.x402_sign, s.x402_send),
            *(s.emit_event, s.llm_step, s.run_tool, s.record_tool_result),
            *(s.prepare_payment, s.payment_status, s.cancel_payment),
        ]


@asynccontextmanager
async def stub_worker(env: WorkflowEnvironment, stubs: Stubs) -> AsyncIterator[str]:
    """The deployed worker's workflows, sandbox and interceptors over `stubs`, on a task queue of its own."""
    task_queue = f"unit-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=stubs.activities(),
        workflow_runner=workflow_runner(),
        interceptors=interceptors(),
    ):
        yield task_queue
