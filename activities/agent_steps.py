"""Agent run activities around the transcript: one LLM step, events, and tool results.

`agent.llm_step` is the crash-safety core. It loads the thread from Postgres (so the activity input is just
(run id, step)), asks the model through the same `llm_complete` code the standalone activity uses (fallback,
error buckets, no SDK retries), and stores the answer keyed by (run_id, step) together with the assistant
message, in one transaction. A retry of a step that already finished - say the worker died after the commit
but before Temporal heard back - returns the stored answer and never asks the model again.
"""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.llm import LlmActivities
from paygent.db.agent_events import publish, record_event
from paygent.db.agent_schema import agent_llm_steps, agent_runs
from paygent.db.agent_transcript import insert_message, load_chat
from paygent.db.audit import append_audit
from paygent.db.schema import audit_log
from paygent.domain.agent_run import EmitEvent, RunEventType, RunStatus
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.errors import ErrorType
from paygent.llm.types import LlmRequest, LlmResponse
from paygent.settings import Settings
from workflows import agent_types as at

HEARTBEAT_SECONDS = 2.0
EXCERPT = 500
RESULT_EXCERPT = 1000


def step_result(step: int, message_id: uuid.UUID, response: LlmResponse, *, reused: bool) -> at.LlmStepResult:
    text = response.text
    return at.LlmStepResult(
        step=step,
        message_id=str(message_id),
        tool_calls=list(response.tool_calls),
        text_excerpt=text[:EXCERPT] if text else None,
        provider=response.provider,
        model=response.model,
        fallback_from=response.fallback_from,
        fallback_reason=response.fallback_reason,
        reused=reused,
        understood=response.understood,
    )


class AgentStepActivities:
    def __init__(self, engine: AsyncEngine, redis: Redis, settings: Settings) -> None:
        self.engine = engine
        self.redis = redis
        self.llm = LlmActivities(settings)

    async def _run_row(self, conn, run_id: uuid.UUID):
        row = (
            await conn.execute(
                sa.select(agent_runs.c.thread_id, agent_runs.c.tenant_id).where(agent_runs.c.id == run_id)
            )
        ).first()
        if row is None:
            raise ApplicationError(
                f"agent run {run_id} is not recorded", type=ErrorType.agent_run_missing, non_retryable=True
            )
        return row

    async def _stored(self, conn, run_id: uuid.UUID, step: int) -> at.LlmStepResult | None:
        row = (
            (
                await conn.execute(
                    sa.select(agent_llm_steps).where(agent_llm_steps.c.run_id == run_id, agent_llm_steps.c.step == step)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return step_result(step, row["message_id"], LlmResponse.model_validate(row["response"]), reused=True)

    async def _complete(self, request: LlmRequest) -> LlmResponse:
        """The model call, heartbeating meanwhile so a cancelled run stops waiting on a slow provider."""
        call = asyncio.create_task(self.llm.llm_complete(request))
        try:
            while True:
                done, _ = await asyncio.wait({call}, timeout=HEARTBEAT_SECONDS)
                if done:
                    return call.result()
                activity.heartbeat()
        finally:
            call.cancel()

    @activity.defn(name=at.ACT_LLM_STEP)
    async def llm_step(self, inp: at.LlmStepInput) -> at.LlmStepResult:
        run_id = uuid.UUID(inp.run_id)
        async with self.engine.connect() as conn:
            stored = await self._stored(conn, run_id, inp.step)
            if stored is not None:
                return stored
            run = await self._run_row(conn, run_id)
            chat = await load_chat(conn, run.thread_id)
        tools = at.TOOLS if inp.tools else []  # a chat turn offers no tools
        response = await self._complete(LlmRequest(messages=chat, tools=tools, system=at.SYSTEM_PROMPT))
        message_id = uuid.uuid4()
        async with self.engine.begin() as conn:
            inserted = await conn.scalar(
                pg_insert(agent_llm_steps)
                .values(
                    run_id=run_id,
                    step=inp.step,
                    message_id=message_id,
                    response=response.model_dump(mode="json"),
                )
                .on_conflict_do_nothing()
                .returning(agent_llm_steps.c.step)
            )
            if inserted is None:  # a concurrent attempt stored this step first: its answer is the one
                stored = await self._stored(conn, run_id, inp.step)
                assert stored is not None
                return stored
            await insert_message(
                conn,
                thread_id=run.thread_id,
                tenant_id=run.tenant_id,
                run_id=run_id,
                role="assistant",
                text=response.text,
                tool_calls=response.tool_calls,
                dedupe_key=f"{run_id}:step:{inp.step}",
                message_id=message_id,
            )
        return step_result(inp.step, message_id, response, reused=False)

    async def _publish(self, payload: dict) -> None:
        """Best effort: Postgres already has the event and SSE re-reads it, so a Redis outage never stalls a run."""
        try:
            await publish(self.redis, payload)
        except (RedisError, OSError) as exc:
            activity.logger.warning("event %s of run %s not published live: %s", payload["seq"], payload["run_id"], exc)

    @activity.defn(name=at.ACT_EMIT)
    async def emit_event(self, event: EmitEvent) -> None:
        async with self.engine.begin() as conn:
            payload = await record_event(conn, event)
            if event.type == RunEventType.agent_failed and event.data.get("status") == RunStatus.cancelled:
                await self._audit_temporal_cancel(conn, event)
        await self._publish(payload)

    async def _audit_temporal_cancel(self, conn, event: EmitEvent) -> None:
        """The API audits a cancel before it asks Temporal (`agent_run.cancel_requested`); a cancellation without
        that row was sent with Temporal's own tools: audit it with channel `temporal` (once)."""
        asked = await conn.scalar(
            sa.select(sa.func.count()).where(
                audit_log.c.subject_type == "agent_run",
                audit_log.c.subject_id == event.run_id,
                audit_log.c.action.in_(["agent_run.cancel_requested", "agent_run.cancelled"]),
            )
        )
        if asked:
            return
        run = await self._run_row(conn, uuid.UUID(event.run_id))
        await append_audit(
            conn,
            tenant_id=run.tenant_id,
            actor="temporal",
            channel=Channel.temporal,
            action=AuditAction.agent_run_cancelled,
            subject_type=AuditSubject.agent_run,
            subject_id=event.run_id,
            data={"reason": event.data.get("error"), "step": event.data.get("step")},
        )

    @activity.defn(name=at.ACT_RECORD_TOOL_RESULT)
    async def record_tool_result(self, rec: at.ToolResultRecord) -> None:
        """The tool's result joins the transcript and `tool_completed` is emitted, atomically."""
        run_id = uuid.UUID(rec.run_id)
        text = rec.outcome.text
        async with self.engine.begin() as conn:
            run = await self._run_row(conn, run_id)
            await insert_message(
                conn,
                thread_id=run.thread_id,
                tenant_id=run.tenant_id,
                run_id=run_id,
                role="tool",
                text=text,
                tool_call_id=rec.call.id,
                tool_name=rec.call.name,
                dedupe_key=f"{run_id}:tool:{rec.call.id}",
            )
            payload = await record_event(
                conn,
                EmitEvent(
                    run_id=rec.run_id,
                    seq=rec.seq,
                    type=RunEventType.tool_completed,
                    data={
                        "step": rec.step,
                        "tool_call_id": rec.call.id,
                        "tool": rec.call.name,
                        "ok": rec.outcome.ok,
                        "result": text if len(text) <= RESULT_EXCERPT else text[: RESULT_EXCERPT - 3] + "...",
                    },
                ),
            )
        await self._publish(payload)
