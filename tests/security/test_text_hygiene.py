"""Text that cannot be stored never gets in, and a value the database refuses behind the edge ends cleanly.

The list of text fields is generated from the API's own OpenAPI document (every string field of every JSON body,
nested ones included, and every string query parameter), so a new endpoint or field is covered without editing
this file. Each gets a NUL (and each body field an unpaired surrogate) and must answer 422 naming that field.
The same through the CLI and through a Temporal Signal: refused, audited, nothing wedged. At the end every
payment made here is in a final state with its reservation settled, and `paygent audit verify` passes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from temporalio.client import WorkflowUpdateFailedError

from paygent.db.schema import audit_log, payments
from paygent.domain.payment import PAYMENT_TERMINAL, PAYMENT_WORKFLOW, PaymentRequest, payment_workflow_id
from paygent.paths import REPO_ROOT
from tests.api.helpers import auth, new_recipient, wait_final
from tests.approvals.helpers import approval, cli, pay, reservation_status, tiers, until, wallet_with_policy
from tests.ws.helpers import connect, recv
from tests.ws.helpers import send as ws_send
from workflows import payment_types as pt
from workflows.approval_types import DecisionResult, approval_workflow_id

NUL, SURROGATE = "bad\x00value", "bad\ud800value"
HASH = "0x" + "ab" * 32
MADE: list[str] = []  # payment ids created in this module: all must end final


def deref(schema: Any, spec: dict) -> Any:
    if isinstance(schema, dict) and "$ref" in schema:
        node = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        return deref(node, spec)
    return schema


def _is_string(schema: dict, spec: dict) -> bool:
    schema = deref(schema, spec)
    if schema.get("type") == "string" and "enum" not in schema and "const" not in schema:
        return schema.get("format") not in ("date-time", "uuid")
    return any(_is_string(s, spec) for s in schema.get("anyOf", []) if deref(s, spec).get("type") != "null")


def sample(schema: dict, spec: dict) -> Any:
    """A value that passes the schema, so that the only problem in a request is the field under test."""
    schema = deref(schema, spec)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return sample(next(s for s in schema["anyOf"] if deref(s, spec).get("type") != "null"), spec)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {
            name: sample(sub, spec)
            for name, sub in schema.get("properties", {}).items()
            if name in schema.get("required", [])
        }
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1)
    if kind == "boolean":
        return False
    if kind == "string":
        if schema.get("format") == "date-time":
            return "2030-01-01T00:00:00Z"
        pattern = schema.get("pattern")
        for candidate in ("ok", HASH, "ok-1"):
            if not pattern or re.search(pattern, candidate):
                return candidate
    return "1"  # untyped (Any): a plain value


def text_paths(schema: dict, spec: dict, prefix: tuple = ()) -> list[tuple]:
    """Locations (field names; 0 for a list item) of every string inside a JSON body schema."""
    schema = deref(schema, spec)
    if _is_string(schema, spec):
        return [prefix]
    out: list[tuple] = []
    for sub in schema.get("anyOf", []):
        if deref(sub, spec).get("type") != "null":
            out += text_paths(sub, spec, prefix)
    for name, sub in schema.get("properties", {}).items():
        out += text_paths(sub, spec, prefix + (name,))
    if schema.get("type") == "array" and "items" in schema:
        out += text_paths(schema["items"], spec, prefix + (0,))
    return out


def with_value(schema: dict, spec: dict, path: tuple, value: str) -> Any:
    """A valid body with `value` at `path` (objects and lists on the way are built from the schema)."""
    schema = deref(schema, spec)
    if not path:
        return value
    if "anyOf" in schema:
        schema = deref(next(s for s in schema["anyOf"] if deref(s, spec).get("type") != "null"), spec)
    head, rest = path[0], path[1:]
    if head == 0:
        return [with_value(schema["items"], spec, rest, value)]
    body = sample(schema, spec)
    body[head] = with_value(schema["properties"][head], spec, rest, value)
    return body


def field_name(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def same_field(reported: str | None, path: tuple) -> bool:
    return reported is not None and re.sub(r"\[(\d+)\]", r".\1", reported) == field_name(path)


def cases(spec: dict) -> list[tuple[str, str, str, Any, tuple]]:
    """(method, path, where, body schema or param name, field path) for every text field of every endpoint."""
    out = []
    for route, ops in spec["paths"].items():
        for method, op in ops.items():
            content = (op.get("requestBody") or {}).get("content", {}).get("application/json")
            if content:
                schema = content["schema"]
                variants = deref(schema, spec).get("oneOf") or [schema]
                for variant in variants:
                    for path in text_paths(variant, spec):
                        out.append((method, route, "body", variant, path))
            for param in op.get("parameters", []):
                if param["in"] == "query" and _is_string(param["schema"], spec):
                    out.append((method, route, "query", param["name"], (param["name"],)))
    return out


async def send(http, dev, method: str, route: str, *, body=None, params=None):
    known = {"wallet_id": dev["wallets"]["treasury"]["id"]}  # a route may look its resource up before the body
    url = re.sub(r"\{([^}]+)\}", lambda m: known.get(m.group(1), str(uuid.uuid4())), route)
    for user in ("alice", "bob"):  # whoever may call it: a role refusal (403) would hide the validation
        # JSON with \u escapes, as any client may send it (an unpaired surrogate has no UTF-8 encoding)
        r = await http.request(
            method.upper(),
            url,
            params=params,
            content=None if body is None else json.dumps(body).encode(),
            headers={**auth(dev, user), "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"},
        )
        if r.status_code != 403:
            return r
    return r


async def test_nul_in_every_text_field_of_every_endpoint_is_422_naming_it(http, dev):
    spec = (await http.get("/openapi.json")).json()
    found = cases(spec)
    assert len(found) > 30, found  # the generator sees the API (a broken walk would find nothing)
    failures, body_fields, query_fields = [], 0, 0
    for method, route, where, schema, path in found:
        values = (NUL, SURROGATE) if where == "body" else (NUL,)
        for value in values:
            if where == "body":
                r = await send(http, dev, method, route, body=with_value(schema, spec, path, value))
            else:
                r = await send(http, dev, method, route, params={path[0]: value})
            error = r.json().get("error", {}) if r.headers.get("content-type") == "application/json" else {}
            if r.status_code != 422 or not same_field(error.get("field"), path):
                failures.append((method, route, field_name(path), repr(value), r.status_code, r.text[:200]))
        body_fields += where == "body"
        query_fields += where == "query"
    assert not failures, "\n".join(map(str, failures))
    print(
        f"\ntext fields covered: {len(found)} ({body_fields} body fields, {query_fields} query parameters) "
        f"on {len({(m, r) for m, r, *_ in found})} endpoints"
    )


async def test_nul_in_a_path_parameter_is_never_a_server_error(http, dev):
    spec = (await http.get("/openapi.json")).json()
    for route, ops in spec["paths"].items():
        if "{" not in route:
            continue
        for method in ops:
            url = re.sub(r"\{[^}]+\}", "%00bad", route)
            r = await http.request(method.upper(), url, json={}, headers={**auth(dev), "Idempotency-Key": "k"})
            assert r.status_code < 500, (method, url, r.status_code, r.text)


async def test_cli_refuses_unstorable_reason_and_the_payment_still_ends_cleanly(
    http, dev, app_settings, api_url, db_engine
):
    wallet = await wallet_with_policy(http, dev, app_settings, tiers())
    pid = await pay(http, dev, "250", wallet_id=wallet["id"])
    MADE.append(pid)
    as_bob = ["--api-url", api_url, "--api-key", dev["users"]["bob"]["api_key"]]
    # argv cannot carry NUL; bytes that are not UTF-8 reach Python as unpaired surrogates
    refused = await cli("reject", pid, "--reason", "bad" + os.fsdecode(b"\xff") + "value", *as_bob)
    assert refused.code == 2 and "--reason must not contain unpaired surrogates" in refused.err, refused
    assert (await approval(http, dev, pid))["status"] == "pending"
    ok = await cli("reject", pid, "--reason", "not this one", *as_bob)
    assert ok.code == 0, ok
    final = await wait_final(http, dev, pid)
    assert final["status"] == "cancelled" and "not this one" in final["failure_reason"]
    assert await reservation_status(db_engine, pid) == "released"


async def test_signal_with_nul_reason_is_refused_audited_and_nothing_wedges(
    http, dev, app_settings, temporal_env, db_engine
):
    wallet = await wallet_with_policy(http, dev, app_settings, tiers())
    pid = await pay(http, dev, "250", wallet_id=wallet["id"])
    MADE.append(pid)
    handle = temporal_env.client.get_workflow_handle(approval_workflow_id(pid))
    await handle.signal("reject", {"actor": "bob\x00", "reason": "wedge\x00me", "channel": "api"})
    rows = await until(lambda: _audit(db_engine, pid, "approval.signal_refused"), lambda rows: len(rows) == 1)
    actor, channel, data = rows[0]
    assert channel == "temporal" and actor == "bob\\u0000"
    assert data["type"] == "InvalidRequest" and "NUL" in data["reason"]
    assert data["body"]["reason"] == "wedge\\u0000me"  # shown as sent, made storable
    assert (await approval(http, dev, pid))["status"] == "pending"
    # the same as an Update sent straight to Temporal: refused before it reaches history, nothing changes
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            "reject", {"actor": "bob", "reason": "wedge\x00me"}, id="nul-update", result_type=DecisionResult
        )
    assert (await approval(http, dev, pid))["status"] == "pending"
    await handle.signal("cancel", {"actor": "alice", "reason": "clean end"})
    final = await wait_final(http, dev, pid)
    assert final["status"] == "cancelled" and "clean end" in final["failure_reason"]
    assert await reservation_status(db_engine, pid) == "released"


async def test_value_refused_by_the_database_fails_the_payment_cleanly(
    temporal_env, app_settings, db_engine, dev, worker
):
    """Behind the edge: a workflow started with a memo the database refuses (no API in between). The activity fails
    once, non-retryably (DataRefused), and the payment ends `failed` with the reason instead of retrying forever."""
    pid = uuid.uuid4()
    treasury = dev["wallets"]["treasury"]
    async with db_engine.begin() as conn:
        await conn.execute(
            payments.insert().values(
                id=pid,
                tenant_id=uuid.UUID(dev["tenant"]["id"]),
                wallet_id=uuid.UUID(treasury["id"]),
                requested_by=uuid.UUID(dev["users"]["alice"]["id"]),
                idempotency_key=f"data-error-{pid}",
                request_hash="test",
                kind="transfer",
                chain_id=31337,
                asset="USDC",
                token_address=app_settings.token_address,
                to_address=new_recipient(),
                amount_atomic=1_000_000,
                status="pending",
                workflow_id=payment_workflow_id(str(pid)),
            )
        )
    MADE.append(str(pid))
    req = PaymentRequest(
        payment_id=str(pid),
        tenant_id=dev["tenant"]["id"],
        wallet_id=treasury["id"],
        wallet_address=treasury["address"],
        requested_by="alice",
        requested_by_id=dev["users"]["alice"]["id"],
        chain_id=31337,
        asset="USDC",
        decimals=6,
        token_address=app_settings.token_address,
        to=new_recipient(),
        amount_atomic=1_000_000,
        memo="refused\x00by the database",
    )
    handle = await temporal_env.client.start_workflow(
        PAYMENT_WORKFLOW,
        req,
        id=payment_workflow_id(str(pid)),
        task_queue=app_settings.task_queue,
        result_type=pt.PaymentState,
    )
    state = await asyncio.wait_for(handle.result(), timeout=60)  # once, not retried forever
    assert state.status == "failed" and "DataRefused" in state.failure_reason, state
    async with db_engine.connect() as conn:
        row = (
            await conn.execute(sa.select(payments.c.status, payments.c.failure_reason).where(payments.c.id == pid))
        ).one()
    assert row.status == "failed" and "DataRefused" in row.failure_reason
    assert await _audit_payment(db_engine, str(pid), "payment.failed")


async def test_afterwards_everything_is_final_and_the_audit_chain_verifies(http, dev, db_engine, database_url):
    assert MADE, "the tests above made payments"
    async with db_engine.connect() as conn:
        statuses = {
            str(r.id): r.status
            for r in await conn.execute(
                sa.select(payments.c.id, payments.c.status).where(payments.c.id.in_([uuid.UUID(p) for p in MADE]))
            )
        }
    assert all(s in PAYMENT_TERMINAL for s in statuses.values()), statuses
    for pid in MADE:
        assert await reservation_status(db_engine, pid) in (None, "released", "committed")
    # as the database owner (the operator's view): row-level security hides other tenants' rows from the app role
    env = {**os.environ, "PAYGENT_DATABASE_URL": database_url}
    proc = subprocess.run(
        [sys.executable, "-m", "paygent.cli", "audit", "verify"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checked = int(re.search(r"intact: (\d+) rows verified", proc.stdout).group(1))
    async with db_engine.connect() as conn:
        assert checked == await conn.scalar(sa.select(sa.func.count()).select_from(audit_log)) > 0


async def _audit(engine, approval_id: str, action: str) -> list[tuple[str, str, dict]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(audit_log.c.actor, audit_log.c.channel, audit_log.c.data)
            .where(
                audit_log.c.subject_type == "approval",
                audit_log.c.subject_id == approval_id,
                audit_log.c.action == action,
            )
            .order_by(audit_log.c.id)
        )
        return [tuple(r) for r in rows]


async def _audit_payment(engine, payment_id: str, action: str) -> bool:
    async with engine.connect() as conn:
        return bool(
            await conn.scalar(
                sa.select(sa.func.count())
                .select_from(audit_log)
                .where(
                    audit_log.c.subject_type == "payment",
                    audit_log.c.subject_id == payment_id,
                    audit_log.c.action == action,
                )
            )
        )


async def test_nul_in_every_text_field_of_every_websocket_message_names_it(http, dev, api_url):
    """The WebSocket's client messages, from the same OpenAPI document (`x-websockets`): an `error` naming the field."""
    spec = (await http.get("/openapi.json")).json()
    messages = spec["x-websockets"]["/v1/ws"]["client_messages"]["oneOf"]
    failures, covered = [], 0
    async with connect(api_url, dev["users"]["alice"]["api_key"]) as ws:
        for ref in messages:
            schema = deref(ref, spec)
            kind = schema["properties"]["type"]["const"]
            if kind == "auth":  # already authenticated: refused for its type before its fields matter
                continue
            for path in text_paths(schema, spec):
                for value in (NUL, SURROGATE):
                    frame = {**with_value(schema, spec, path, value), "type": kind}
                    await ws_send(ws, json.dumps(frame))  # \u escapes: a lone surrogate has no UTF-8 form
                    error = await recv(ws)
                    if error.get("type") != "error" or not same_field(error.get("field"), path):
                        failures.append((kind, field_name(path), repr(value), error))
                covered += 1
    assert not failures, "\n".join(map(str, failures))
    assert covered >= 8, covered
    print(f"\nwebsocket text fields covered: {covered}")
