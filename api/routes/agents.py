"""Agents as principals (admins): create one with its own API key, wallets and budget; list, read, rotate its
key, disable it.

An agent key pays and fetches with x402 from its granted wallets only, within the tighter of its own spending
policy and the wallet's; it starts agent runs and reads its own payments and runs, and nothing else (see
`api.authz.allow(..., agents=True)`). The key is shown once, stored as a hash. Rotating or disabling takes
effect on the very next request; disabling also cancels the agent's runs and payments still waiting (their
reservations are released by the workflows as they close).
"""

from __future__ import annotations

import logging
import uuid

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.authz import Role, allow
from api.deps import Deps, deps
from api.errors import ApiError
from api.routes.wallets import SpendingPolicyIn, policy_from_body
from paygent.db import agents as agents_db
from paygent.db.accounts import Principal, get_wallet
from paygent.db.agent_schema import agent_runs
from paygent.db.audit import append_audit
from paygent.db.schema import payments, users
from paygent.domain.agent_run import RUN_TERMINAL
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.errors import InvalidInput
from paygent.domain.payment import PAYMENT_CANCELLABLE
from paygent.domain.spending import SpendingPolicy, UnitOf, policy_view
from paygent.domain.text import SafeText
from workflows import payment_types as pt

router = APIRouter(prefix="/v1/agents", tags=["agents"])
log = logging.getLogger("paygent.api.agents")
ADMIN = allow(Role.admin)
OVERSIGHT = allow(Role.admin, Role.auditor)


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: SafeText = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    wallet_ids: list[SafeText] = Field(default_factory=list, max_length=100, description="wallets it may spend from")
    spending_policy: SpendingPolicyIn | None = None


def agent_view(row, unit_of: UnitOf) -> dict:
    policy = row["spending_policy"]
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "owner": row["owner"],
        "disabled": row["disabled"],
        "wallet_ids": sorted(row["wallet_ids"] or []),
        "spending_policy": policy_view(SpendingPolicy.model_validate(policy), unit_of) if policy is not None else None,
        "created_at": row["created_at"].isoformat(),
        "disabled_at": row["disabled_at"].isoformat() if row["disabled_at"] else None,
    }


async def _agent_or_404(conn, who: Principal, agent_id: str):
    try:
        aid = uuid.UUID(agent_id)
    except ValueError:
        raise ApiError(404, "not_found", "agent not found") from None
    row = await agents_db.get_agent(conn, who.tenant_id, aid)
    if row is None:
        raise ApiError(404, "not_found", "agent not found")
    return row


@router.post("", status_code=201)
async def create(body: AgentCreate, who: Principal = Depends(ADMIN), d: Deps = Depends(deps)):
    policy = (
        policy_from_body(body.spending_policy, d.settings, prefix="spending_policy.")
        if body.spending_policy
        else SpendingPolicy()
    )
    async with d.engine.begin() as conn:
        wallet_ids = []
        for i, text in enumerate(body.wallet_ids):
            try:
                wallet = await get_wallet(conn, who.tenant_id, uuid.UUID(text))
            except ValueError:
                wallet = None
            if wallet is None:
                raise InvalidInput(f"wallet_ids[{i}]", "no such wallet")
            wallet_ids.append(wallet.id)
        taken = await conn.scalar(
            sa.select(users.c.id).where(users.c.tenant_id == who.tenant_id, users.c.name == body.name)
        )
        if taken:
            raise ApiError(409, "conflict", f"name: a user or agent named {body.name!r} exists", "name")
        agent_id, api_key = await agents_db.create_agent(
            conn,
            tenant_id=who.tenant_id,
            name=body.name,
            owner_id=who.user_id,
            owner_name=who.name,
            wallet_ids=wallet_ids,
            policy=policy,
        )
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.actor,
            channel=Channel.api,
            action=AuditAction.agent_created,
            subject_type=AuditSubject.agent,
            subject_id=str(agent_id),
            data={
                "name": body.name,
                "owner": who.name,
                "wallet_ids": [str(w) for w in wallet_ids],
                "spending_policy": policy.model_dump(mode="json"),
            },
        )
    return {"id": str(agent_id), "name": body.name, "api_key": api_key}


@router.get("")
async def list_agents(who: Principal = Depends(OVERSIGHT), d: Deps = Depends(deps)):
    async with d.engine.connect() as conn:
        rows = await agents_db.list_agents(conn, who.tenant_id)
    return {"items": [agent_view(r, d.settings.unit_of) for r in rows]}


@router.get("/{agent_id}")
async def get_one(agent_id: str, who: Principal = Depends(OVERSIGHT), d: Deps = Depends(deps)):
    async with d.engine.connect() as conn:
        return agent_view(await _agent_or_404(conn, who, agent_id), d.settings.unit_of)


@router.put("/{agent_id}/spending-policy")
async def put_policy(agent_id: str, body: SpendingPolicyIn, who: Principal = Depends(ADMIN), d: Deps = Depends(deps)):
    """Replace the agent's own spending policy; it applies from the agent's next reservation."""
    policy = policy_from_body(body, d.settings)
    async with d.engine.begin() as conn:
        row = await _agent_or_404(conn, who, agent_id)
        await agents_db.save_agent_policy(conn, row["id"], policy)
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.actor,
            channel=Channel.api,
            action=AuditAction.agent_spending_policy_set,
            subject_type=AuditSubject.agent,
            subject_id=str(row["id"]),
            data={"name": row["name"], "owner": row["owner"], **policy.model_dump(mode="json")},
        )
        return agent_view(await _agent_or_404(conn, who, agent_id), d.settings.unit_of)


async def forget_keys(d: Deps) -> None:
    """After a key was taken away (committed): no API process may answer from a remembered lookup."""
    if d.principals is not None:
        await d.principals.invalidate()


@router.post("/{agent_id}/rotate-key")
async def rotate_key(agent_id: str, who: Principal = Depends(ADMIN), d: Deps = Depends(deps)):
    """A new key, shown once; the old one stops working as this answer is sent."""
    async with d.engine.begin() as conn:
        row = await _agent_or_404(conn, who, agent_id)
        if row["disabled"]:
            raise ApiError(409, "agent_disabled", "the agent is disabled: its key cannot be rotated")
        api_key = await agents_db.rotate_key(conn, row["id"])
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.actor,
            channel=Channel.api,
            action=AuditAction.agent_key_rotated,
            subject_type=AuditSubject.agent,
            subject_id=str(row["id"]),
            data={"name": row["name"], "owner": row["owner"]},
        )
    await forget_keys(d)
    return {"id": str(row["id"]), "name": row["name"], "api_key": api_key}


@router.post("/{agent_id}/disable")
async def disable(agent_id: str, who: Principal = Depends(ADMIN), d: Deps = Depends(deps)):
    """The key answers 401 from now on; the agent's unfinished runs and waiting payments are cancelled."""
    async with d.engine.begin() as conn:
        row = await _agent_or_404(conn, who, agent_id)
        await agents_db.disable(conn, row["id"])
        runs = (
            (
                await conn.execute(
                    sa.select(agent_runs.c.workflow_id).where(
                        sa.or_(agent_runs.c.agent_id == row["id"], agent_runs.c.user_id == row["id"]),
                        agent_runs.c.status.not_in(RUN_TERMINAL),
                    )
                )
            )
            .scalars()
            .all()
        )
        waiting = (
            (
                await conn.execute(
                    sa.select(payments.c.workflow_id).where(
                        payments.c.requested_by == row["id"], payments.c.status.in_(PAYMENT_CANCELLABLE)
                    )
                )
            )
            .scalars()
            .all()
        )
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.actor,
            channel=Channel.api,
            action=AuditAction.agent_disabled,
            subject_type=AuditSubject.agent,
            subject_id=str(row["id"]),
            data={
                "name": row["name"],
                "owner": row["owner"],
                "runs_cancelled": len(runs),
                "payments_cancelled": len(waiting),
            },
        )
    await forget_keys(d)
    reason = f"agent {row['name']} disabled by {who.actor}"
    for workflow_id in runs:  # the run cancels its own payment in flight, which releases the reservation
        try:
            await d.temporal.get_workflow_handle(workflow_id).cancel(reason=reason)
        except RPCError:
            log.warning("could not cancel run %s of disabled agent %s", workflow_id, row["id"], exc_info=True)
    for workflow_id in waiting:
        try:
            await d.temporal.get_workflow_handle(workflow_id).execute_update(
                pt.UPDATE_CANCEL,
                pt.PaymentCancelRequest(actor=who.actor, channel=Channel.api, reason=reason),
                result_type=pt.PaymentState,
            )
        except (WorkflowUpdateFailedError, RPCError):  # already signing (it settles on its own) or closed
            log.info("payment %s of disabled agent %s not cancelled", workflow_id, row["id"], exc_info=True)
    return {"id": str(row["id"]), "disabled": True, "runs_cancelled": len(runs), "payments_cancelled": len(waiting)}
