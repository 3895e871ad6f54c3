"""Shared set-up for the ApprovalWorkflow tests: a real worker on the time-skipping server, the real activities on
the real Postgres and Redis, and helpers that read what a user would see (outcomes, audit rows, approvals rows).

Time only skips while a workflow *result* is awaited (or during `env.sleep`), so tests send their decisions
first and await the result last.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.approvals import ApprovalActivities, ConfiguredWebhook, approval_activities
from paygent import search_attributes
from paygent.db.schema import approvals, audit_log, tenants
from paygent.domain.approval_policy import ApprovalPolicy, default_dev_policy
from paygent.domain.approval_rules import Delegation
from paygent.domain.operation_hash import Operation
from paygent.settings import Settings
from workflows.approval import ApprovalWorkflow
from workflows.approval_client import send_decision
from workflows.approval_types import (
    REQUEST_MODELS,
    ApprovalInput,
    ApprovalOutcome,
    ApprovalView,
    DecisionResult,
    approval_workflow_id,
)

UNIT = 10**6
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
RECIPIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


async def register_search_attributes(client: Client) -> None:
    """The time-skipping server knows no custom search attributes until told (the dev server gets flags)."""
    kinds = {
        SearchAttributeIndexedValueType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
        SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    }
    for key in search_attributes.ALL:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=client.namespace, search_attributes={key.name: kinds[key.indexed_value_type]}
                )
            )
        except RPCError as exc:
            if "already" not in str(exc).lower():
                raise


@dataclass
class Harness:
    env: WorkflowEnvironment
    engine: AsyncEngine
    redis: aioredis.Redis
    tenant_id: str
    task_queue: str

    @property
    def client(self) -> Client:
        return self.env.client

    def operation(self, tokens: int, **over) -> Operation:
        fields = dict(
            chain_id=31337,
            wallet_id=str(uuid.uuid4()),
            asset="USDC",
            token_address=TOKEN,
            to=RECIPIENT,
            amount_atomic=tokens * UNIT,
            payment_id=str(uuid.uuid4()),
            memo="invoice",
        )
        return Operation(**{**fields, **over})

    async def start(
        self,
        tokens: int,
        *,
        initiator: str = "alice",
        policy: ApprovalPolicy | None = None,
        delegations: Sequence[Delegation] = (),
    ) -> WorkflowHandle:
        op = self.operation(tokens)
        inp = ApprovalInput(
            approval_id=op.payment_id,
            tenant_id=self.tenant_id,
            operation=op,
            initiator=initiator,
            policy=policy or default_dev_policy(),
            delegations=list(delegations),
        )
        return await self.client.start_workflow(
            ApprovalWorkflow.run, inp, id=approval_workflow_id(inp.approval_id), task_queue=self.task_queue
        )

    async def decide(
        self, handle: WorkflowHandle, decision: str, *, request_id: str | None = None, **fields
    ) -> DecisionResult:
        return await send_decision(
            self.client,
            approval_id(handle),
            decision,
            REQUEST_MODELS[decision](**{"channel": "api", **fields}),
            request_id=request_id,
        )

    async def state(self, handle: WorkflowHandle) -> ApprovalView:
        return await handle.query(ApprovalWorkflow.state)

    async def outcome(self, handle: WorkflowHandle) -> ApprovalOutcome:
        return await handle.result()

    async def audit(self, handle: WorkflowHandle) -> list[dict]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(audit_log)
                .where(
                    audit_log.c.subject_type == "approval",
                    audit_log.c.subject_id == approval_id(handle),
                )
                .order_by(audit_log.c.id)
            )
            return [dict(r) for r in rows.mappings()]

    async def audited(self, handle: WorkflowHandle, action: str, count: int = 1, timeout: float = 20.0) -> list[dict]:
        """The audit rows once `count` rows of `action` are there: a decision answers before its row is written."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            rows = await self.audit(handle)
            if sum(r["action"] == action for r in rows) >= count:
                return rows
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {count} x {action} within {timeout}s: {actions(rows)}")
            await asyncio.sleep(0.05)

    async def row(self, handle: WorkflowHandle) -> dict:
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(approvals).where(approvals.c.id == approval_id(handle)))
            return dict(rows.mappings().one())

    async def row_when(self, handle: WorkflowHandle, status: str, timeout: float = 20.0) -> dict:
        """The approvals row once it shows `status`: the row is written after the decision is answered."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            row = await self.row(handle)
            if row["status"] == status:
                return row
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"approvals row still {row['status']} after {timeout}s, not {status}")
            await asyncio.sleep(0.05)


def approval_id(handle: WorkflowHandle) -> str:
    return handle.id.removeprefix("approval-")


def actions(rows: list[dict]) -> list[tuple[str, str, str]]:
    return [(r["action"], r["actor"], r["channel"]) for r in rows]


@asynccontextmanager
async def running_harness(
    env: WorkflowEnvironment,
    engine: AsyncEngine,
    redis_url: str,
    *,
    webhooks: Sequence[ConfiguredWebhook] = (),
    egress_allow: str = "",
    settings: Settings | None = None,
) -> AsyncIterator[Harness]:
    """A tenant of its own, the real activities, and a worker on a task queue of its own.

    `egress_allow`: the local receivers the webhook activity may reach (loopback is refused otherwise).
    """
    await register_search_attributes(env.client)
    tenant_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(tenants.insert().values(id=tenant_id, name=f"approvals-{tenant_id.hex[:8]}"))
    redis_client = aioredis.Redis.from_url(redis_url)
    settings = settings or Settings(egress_allow=egress_allow)
    acts = ApprovalActivities(engine, redis_client, settings, webhooks=webhooks)
    task_queue = f"approvals-{uuid.uuid4().hex[:8]}"
    try:
        async with Worker(
            env.client, task_queue=task_queue, workflows=[ApprovalWorkflow], activities=approval_activities(acts)
        ):
            yield Harness(env, engine, redis_client, str(tenant_id), task_queue)
    finally:
        await acts.aclose()
        await redis_client.aclose()
