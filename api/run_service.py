"""Starting, reading and cancelling agent runs, for the HTTP routes (api/routes/agent_runs.py) and the WebSocket
(api/routes/ws.py) alike; and the thread a run is recorded on (api/routes/threads.py serves threads themselves).

A run is recorded (thread, user message, run row) in one transaction before its workflow starts, so a client
that gets 202 can always read the run back. One run at a time per thread (the thread row is locked while
checking): a transcript is a single line of conversation. Reads are scoped to the caller's tenant and user.
"""

from __future__ import annotations

import logging
import uuid

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from api.authz import spendable_wallet
from api.closed_workflows import closed_conflict, closed_status
from api.deps import Deps
from api.errors import ApiError
from paygent import search_attributes as sattr
from paygent.db import agents as agents_db
from paygent.db.accounts import AGENT, Principal
from paygent.db.agent_schema import agent_runs, threads
from paygent.db.agent_transcript import insert_message
from paygent.db.audit import append_audit
from paygent.db.grants import SPEND
from paygent.db.schema import wallet_grants, wallets
from paygent.domain.agent_run import RUN_TERMINAL, RunStatus
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.errors import InvalidInput
from paygent.domain.text import SafeText
from workflows import agent_types as at

log = logging.getLogger("paygent.api.agent_runs")


class AgentRunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: SafeText = Field(min_length=1, max_length=8_000)
    thread_id: SafeText | None = None
    wallet_id: SafeText | None = None
    agent_id: SafeText | None = Field(None, description="run as this agent of yours (its grants, budget and payments)")
    max_steps: int = Field(at.DEFAULT_MAX_STEPS, ge=1, le=at.MAX_MAX_STEPS)
    tools: bool = Field(True, description="false: a chat turn, the model is offered no tools")


def parse_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def owned_thread(conn: AsyncConnection, who: Principal, thread_id: str | uuid.UUID | None, *, lock: bool = False):
    """The thread if the caller owns it, else None (missing, another user's, another tenant's: all alike)."""
    tid = thread_id if isinstance(thread_id, uuid.UUID) else parse_id(thread_id or "")
    if tid is None:
        return None
    query = sa.select(threads).where(
        threads.c.id == tid, threads.c.tenant_id == who.tenant_id, threads.c.user_id == who.user_id
    )
    return (await conn.execute(query.with_for_update() if lock else query)).mappings().first()


async def create_thread(conn: AsyncConnection, who: Principal, title: str, channel: Channel = Channel.api) -> uuid.UUID:
    thread_id = uuid.uuid4()
    await conn.execute(threads.insert().values(id=thread_id, tenant_id=who.tenant_id, user_id=who.user_id, title=title))
    await append_audit(
        conn,
        tenant_id=who.tenant_id,
        actor=who.actor,
        channel=channel,
        action=AuditAction.thread_created,
        subject_type=AuditSubject.thread,
        subject_id=str(thread_id),
        data={"title": title},
    )
    return thread_id


async def run_or_404(conn, who: Principal, run_id: str):
    rid = parse_id(run_id)
    row = (
        None
        if rid is None
        else (
            await conn.execute(
                sa.select(agent_runs).where(
                    agent_runs.c.id == rid, agent_runs.c.tenant_id == who.tenant_id, agent_runs.c.user_id == who.user_id
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise ApiError(404, "not_found", "agent run not found")
    return row


async def _wallet_for_run(conn, actor: Principal, wallet_id: str | None) -> uuid.UUID | None:
    """The named wallet (the tenant's, with a spend grant for whoever the run acts as), else the first such
    wallet (`treasury` first), else none: the run then cannot pay."""
    if wallet_id is not None:
        wid = parse_id(wallet_id)
        if wid is None:
            raise InvalidInput("wallet_id", "must be a UUID")
        return (await spendable_wallet(conn, actor, wid)).id
    return await conn.scalar(
        sa.select(wallets.c.id)
        .join(
            wallet_grants,
            sa.and_(
                wallet_grants.c.wallet_id == wallets.c.id,
                wallet_grants.c.user_id == actor.user_id,
                wallet_grants.c.permission == SPEND,
            ),
        )
        .where(wallets.c.tenant_id == actor.tenant_id)
        .order_by((wallets.c.name != "treasury"), wallets.c.created_at)
        .limit(1)
    )


async def _acting_principal(conn, who: Principal, agent_id: str | None) -> Principal:
    """Whom the run acts as: the caller, or (for a person) one of the agents they own, named by `agent_id`."""
    if agent_id is None:
        return who
    if who.is_agent:
        raise InvalidInput("agent_id", "an agent key runs as itself")
    aid = parse_id(agent_id)
    row = None if aid is None else await agents_db.get_agent(conn, who.tenant_id, aid)
    if row is None or row["owner"] != who.name:
        raise InvalidInput("agent_id", "no such agent of yours")
    if row["disabled"]:
        raise ApiError(409, "agent_disabled", "agent_id: the agent is disabled", "agent_id")
    return Principal(
        user_id=row["id"],
        tenant_id=who.tenant_id,
        name=row["name"],
        roles=("requester",),
        kind=AGENT,
        owner_id=who.user_id,
        owner_name=who.name,
    )


async def start_run(d: Deps, who: Principal, body: AgentRunCreate, *, transport: str = "http") -> dict:
    """Record the run (thread, message, row, audit) in one transaction, then start its workflow; the answer is
    what `POST /v1/agent-runs` returns. Shared with the WebSocket's `start_agent`, `user_message` and `chat`."""
    if not body.message.strip():
        raise InvalidInput("message", "must not be blank")
    if body.thread_id is not None and parse_id(body.thread_id) is None:
        raise InvalidInput("thread_id", "must be a UUID")
    run_id, message_id = uuid.uuid4(), uuid.uuid4()
    workflow_id = at.agent_workflow_id(str(run_id))
    async with d.engine.begin() as conn:
        if body.thread_id is not None:
            thread = await owned_thread(conn, who, body.thread_id, lock=True)
            if thread is None:
                raise ApiError(404, "not_found", "thread_id: no such thread", "thread_id")
            if thread["archived_at"] is not None:
                raise ApiError(409, "thread_archived", "thread_id: the thread is archived", "thread_id")
            active = await conn.scalar(
                sa.select(agent_runs.c.id)
                .where(agent_runs.c.thread_id == thread["id"], agent_runs.c.status.not_in(RUN_TERMINAL))
                .limit(1)
            )
            if active is not None:
                raise ApiError(
                    409, "run_active", f"thread_id: run {active} is still active in this thread", "thread_id"
                )
            thread_id = thread["id"]
        else:
            thread_id = await create_thread(conn, who, body.message.strip()[:80])
        actor = await _acting_principal(conn, who, body.agent_id)
        wallet_id = await _wallet_for_run(conn, actor, body.wallet_id)
        await insert_message(
            conn,
            thread_id=thread_id,
            tenant_id=who.tenant_id,
            run_id=run_id,
            role="user",
            text=body.message,
            message_id=message_id,
        )
        await conn.execute(
            agent_runs.insert().values(
                id=run_id,
                tenant_id=who.tenant_id,
                user_id=who.user_id,
                thread_id=thread_id,
                message_id=message_id,
                wallet_id=wallet_id,
                agent_id=actor.user_id if actor.is_agent else None,
                workflow_id=workflow_id,
                status=RunStatus.queued,
                max_steps=body.max_steps,
            )
        )
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.actor,
            channel=Channel.api,
            action=AuditAction.agent_run_requested,
            subject_type=AuditSubject.agent_run,
            subject_id=str(run_id),
            data={
                "thread_id": str(thread_id),
                "wallet_id": str(wallet_id) if wallet_id else None,
                "as": actor.actor,
                "tools": body.tools,
                "transport": transport,
            },
        )
    # the run acts as `actor`: its payments, grants, budget and memory are the agent's when one is named
    inp = at.AgentRunInput(
        run_id=str(run_id),
        tenant_id=str(who.tenant_id),
        user_id=str(actor.user_id),
        user_name=actor.actor,
        thread_id=str(thread_id),
        message_id=str(message_id),
        wallet_id=str(wallet_id) if wallet_id else None,
        max_steps=body.max_steps,
        tools=body.tools,
    )
    try:
        await d.temporal.start_workflow(
            at.WORKFLOW_NAME,
            inp,
            id=workflow_id,
            task_queue=d.settings.task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sattr.STATUS, RunStatus.running),
                    SearchAttributePair(sattr.TENANT, str(who.tenant_id)),
                    SearchAttributePair(sattr.KIND, "agent_run"),
                ]
            ),
            static_summary=f"Agent run for {actor.actor}: {body.message.strip()[:100]}",
        )
    except Exception as exc:  # the run is recorded: mark it failed rather than leave it queued forever
        log.exception("could not start agent run %s", run_id)
        async with d.engine.begin() as conn:
            await conn.execute(
                agent_runs.update()
                .where(agent_runs.c.id == run_id)
                .values(
                    status=RunStatus.failed, error=f"could not start: {type(exc).__name__}", finished_at=sa.func.now()
                )
            )
        raise ApiError(503, "temporal_unavailable", "the run could not be started; try again") from None
    return {
        "id": str(run_id),
        "thread_id": str(thread_id),
        "message_id": str(message_id),
        "workflow_id": workflow_id,
        "status": RunStatus.queued,
        "events_url": f"/v1/agent-runs/{run_id}/events",
    }


async def request_cancel(
    d: Deps, who: Principal, run_id: str, *, transport: str = "http", via: Channel = Channel.api
) -> dict:
    """Temporal cancellation: in-flight activities stop, a payment in flight is asked to cancel."""
    async with d.engine.begin() as conn:
        row = await run_or_404(conn, who, run_id)
        if row["status"] in RUN_TERMINAL:
            raise ApiError(409, "not_cancellable", f"agent run is already {row['status']}")
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.actor,
            channel=via,
            action=AuditAction.agent_run_cancel_requested,
            subject_type=AuditSubject.agent_run,
            subject_id=run_id,
            data={"transport": transport},
        )
        # Temporal accepts a cancel of a closed workflow without a word: ask first. Inside the transaction, so a
        # refused request leaves no audit row.
        closed = await closed_status(d.temporal, row["workflow_id"])
        if closed is not None:
            raise closed_conflict("agent run", row["status"], closed)
        how = transport if transport != "http" else via  # the WebSocket, or the API / the CLI
        await d.temporal.get_workflow_handle(row["workflow_id"]).cancel(reason=f"cancelled by {who.actor} via {how}")
    return {"id": run_id, "status": "cancelling"}
