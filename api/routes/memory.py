"""/v1/memory: items in scopes (put, get, delete, search), partitions, recall, stats, and grants on shared scopes.

Every principal (people and agents) may use its private scopes; shared scopes follow paygent.memory.access.
A refusal is 403 naming `scope` and touches nothing; a version conflict is 409 with the current version.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from api.authz import Role, allow
from api.deps import Deps, deps
from api.errors import ApiError
from api.memory_service import place_for, store_for, unavailable
from paygent.db.accounts import Principal
from paygent.db.audit import append_audit
from paygent.db.schema import users
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.errors import InvalidInput
from paygent.domain.text import SafeText
from paygent.memory.access import Access, set_grant
from paygent.memory.recall import MAX_K, recall
from paygent.memory.scope import compile_pattern
from paygent.memory.store import PAGE_MAX, Unavailable, VersionConflict, encode_value

router = APIRouter(prefix="/v1/memory", tags=["memory"])
ANYONE = allow(Role.requester, Role.approver, Role.admin, Role.auditor, agents=True)


def _joined(value: Any) -> Any:
    """A scope may be sent as ["a", "b"] or "a/b"; both are read as "a/b" (a segment holding "/" is refused)."""
    if isinstance(value, list):
        if not all(isinstance(p, str) and "/" not in p for p in value):
            raise ValueError("a scope's segments are strings without '/'")
        return "/".join(value)
    return value


Scope = Annotated[SafeText | None, BeforeValidator(_joined)]
SCOPE_QUERY = Query(None, max_length=600, description="a/b; omitted: your private scope private/default")


class PutItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Scope = None
    key: SafeText = Field(max_length=200)
    value: Any
    ttl_seconds: int | None = Field(None, ge=1, le=366 * 86400)
    refresh_ttl_on_read: bool = False
    partition: SafeText = Field("", max_length=64)
    if_version: int | None = Field(None, ge=0, le=2**63 - 1, description="0: only if the key does not exist")


class Recall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Scope = None
    query: SafeText = Field(min_length=1, max_length=8000)
    k: int = Field(5, ge=1, le=MAX_K)
    filter: dict[str, Any] | None = None


class Memorize(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Scope = None
    text: SafeText = Field(min_length=1, max_length=8000)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Grant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: SafeText = Field(max_length=600)
    agent: SafeText = Field(max_length=200, description="the agent's name or id")
    access: Access


def _filter(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidInput("filter", 'must be a JSON object, e.g. {"status": "open"}') from None
    if not isinstance(value, dict):
        raise InvalidInput("filter", 'must be a JSON object, e.g. {"status": "open"}')
    encode_value(value, "filter")
    return value


@router.put("/items")
async def put_item(body: PutItem, who: Principal = Depends(ANYONE), d: Deps = Depends(deps)):
    place = await place_for(d, who, body.scope, Access.write)
    try:
        return await store_for(d).put(
            place,
            body.key,
            body.value,
            ttl_seconds=body.ttl_seconds,
            partition=body.partition,
            if_version=body.if_version,
            refresh_ttl_on_read=body.refresh_ttl_on_read,
            actor=who.actor,
        )
    except VersionConflict as exc:
        raise ApiError(409, "version_conflict", str(exc), "if_version") from None
    except Unavailable as exc:
        raise unavailable(exc) from None


@router.get("/items")
async def get_item(
    key: str = Query(max_length=200),
    scope: str | None = SCOPE_QUERY,
    who: Principal = Depends(ANYONE),
    d: Deps = Depends(deps),
):
    place = await place_for(d, who, scope, Access.read)
    item = await store_for(d).get(place, key)
    if item is None:
        raise ApiError(404, "not_found", f"key {key}: nothing stored in {place.written} (or it expired)", "key")
    return item


@router.delete("/items")
async def delete_item(
    key: str = Query(max_length=200),
    scope: str | None = SCOPE_QUERY,
    who: Principal = Depends(ANYONE),
    d: Deps = Depends(deps),
):
    place = await place_for(d, who, scope, Access.write)
    try:
        deleted = await store_for(d).delete(place, key)
    except Unavailable as exc:
        raise unavailable(exc) from None
    return {"scope": place.written, "key": key, "deleted": deleted}


@router.get("/search")
async def search(
    scope: str | None = SCOPE_QUERY,
    pattern: str | None = Query(None, max_length=200, description="orders/*/status; ** crosses '/'"),
    prefix: str | None = Query(None, max_length=200),
    filter: str | None = Query(None, max_length=4000, description='JSON fields the value holds: {"status": "open"}'),
    partition: str | None = Query(None, max_length=64),
    limit: int = Query(50, ge=1, le=PAGE_MAX),
    cursor: str | None = Query(None, max_length=1000),
    who: Principal = Depends(ANYONE),
    d: Deps = Depends(deps),
):
    if pattern is not None and prefix is not None:
        raise InvalidInput("pattern", "give a pattern or a prefix, not both")
    compiled = compile_pattern(pattern) if pattern else compile_pattern(prefix + "**") if prefix else None
    place = await place_for(d, who, scope, Access.read)
    return await store_for(d).search(
        place, pattern=compiled, where=_filter(filter), partition=partition, limit=limit, cursor=cursor
    )


@router.get("/partitions")
async def list_partitions(scope: str | None = SCOPE_QUERY, who: Principal = Depends(ANYONE), d: Deps = Depends(deps)):
    place = await place_for(d, who, scope, Access.read)
    return {"scope": place.written, "partitions": await store_for(d).partitions(place)}


@router.delete("/partitions/{partition}")
async def clear_partition(
    partition: str, scope: str | None = SCOPE_QUERY, who: Principal = Depends(ANYONE), d: Deps = Depends(deps)
):
    place = await place_for(d, who, scope, Access.write)
    try:
        removed = await store_for(d).clear_partition(place, partition)
    except Unavailable as exc:
        raise unavailable(exc) from None
    return {"scope": place.written, "partition": partition, "removed": removed}


@router.post("/recall")
async def recall_similar(body: Recall, who: Principal = Depends(ANYONE), d: Deps = Depends(deps)):
    place = await place_for(d, who, body.scope, Access.read)
    return await recall(store_for(d), place, body.query, body.k, body.filter)


@router.post("/texts", status_code=201)
async def memorize(body: Memorize, who: Principal = Depends(ANYONE), d: Deps = Depends(deps)):
    place = await place_for(d, who, body.scope, Access.write)
    return await store_for(d).memorize(place, body.text, body.metadata)


@router.get("/stats")
async def stats(scope: str | None = SCOPE_QUERY, who: Principal = Depends(ANYONE), d: Deps = Depends(deps)):
    place = await place_for(d, who, scope, Access.read)
    return await store_for(d).stats(place)


@router.put("/grants")
async def put_grant(
    body: Grant, request: Request, who: Principal = Depends(allow(Role.admin)), d: Deps = Depends(deps)
):
    async with d.engine.begin() as conn:
        agent = await _agent(conn, who, body.agent)
        try:
            scope = await set_grant(conn, who, body.scope, agent.id, body.access)
        except ValueError as exc:
            raise InvalidInput("scope", str(exc)) from None
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.actor,
            channel=Channel.api,
            action=AuditAction.memory_scope_grant_set,
            subject_type=AuditSubject.memory_scope,
            subject_id=scope.path,
            data={"agent": agent.name, "access": body.access.value},
        )
    return {"scope": scope.path, "agent": agent.name, "access": body.access.value}


async def _agent(conn, who: Principal, name_or_id: str):
    u = users.c
    try:
        match = u.id == uuid.UUID(name_or_id)
    except ValueError:
        match = u.name == name_or_id
    row = (
        await conn.execute(sa.select(u.id, u.name).where(u.tenant_id == who.tenant_id, u.kind == "agent", match))
    ).first()
    if row is None:
        raise InvalidInput("agent", "no such agent in this tenant")
    return row
