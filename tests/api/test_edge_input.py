"""Input the edge must refuse before it reaches a query or a workflow: integer parameters past the column they
are compared with (every one in the OpenAPI document, and every integer in a request body has bounds), and JSON
objects that name a key twice (HTTP and MCP here; WebSocket frames in tests/ws/test_malformed.py). Each gets a 4xx
naming the parameter or key; nothing is recorded."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from paygent.db.schema import payments
from tests.api.helpers import auth, new_recipient, payment_body


def _integer_parameters(spec: dict) -> list[tuple[str, str, dict, dict]]:
    """(path, method, parameter, its integer schema) for every integer parameter of every operation."""
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                schema = param.get("schema", {})
                for candidate in [schema, *schema.get("anyOf", [])]:
                    if candidate.get("type") == "integer":
                        found.append((path, method, param, candidate))
    return found


def _request(path: str, param: dict, value: int, operation: dict | None = None) -> tuple[str, dict, dict]:
    url = path
    for name in [p.strip("{}") for p in path.split("/") if p.startswith("{")]:
        url = url.replace("{" + name + "}", str(value) if name == param["name"] else str(uuid.uuid4()))
    # the operation's other required query parameters, well-formed, so only this one can be refused
    query = {
        p["name"]: str(uuid.uuid4()) if p.get("schema", {}).get("format") == "uuid" else "1"
        for p in (operation or {}).get("parameters", [])
        if p["in"] == "query" and p.get("required") and p["name"] != param["name"]
    }
    query |= {param["name"]: str(value)} if param["in"] == "query" else {}
    headers = {param["name"]: str(value)} if param["in"] == "header" else {}
    return url, query, headers


async def test_every_integer_parameter_is_bounded_and_refused_past_its_bounds(http, dev):
    spec = (await http.get("/openapi.json")).json()
    params = _integer_parameters(spec)
    assert {(p, param["name"]) for p, _, param, _ in params} >= {
        ("/v1/audit", "before"),
        ("/v1/agent-runs/{run_id}/events", "after"),
        ("/v1/threads/{thread_id}/messages", "after"),
    }
    admin = auth(dev, "alice")  # requester and admin: past every role check of these reads
    for path, method, param, schema in params:
        operation = spec["paths"][path][method]
        assert "maximum" in schema and "minimum" in schema, f"{method} {path} {param['name']}: unbounded"
        assert schema["maximum"] <= 2**63 - 1
        for bad in (schema["maximum"] + 1, schema["minimum"] - 1, 2**64, 10**20):
            url, query, headers = _request(path, param, bad, operation)
            r = await http.request(method, url, params=query, headers={**admin, **headers})
            assert r.status_code == 422, (method, url, query, r.text)
            assert r.json()["error"]["field"] == param["name"], (method, url, r.text)
        url, query, headers = _request(path, param, schema["maximum"], operation)  # the largest allowed: no 5xx
        r = await http.request(method, url, params=query, headers={**admin, **headers})
        assert r.status_code < 500, (method, url, query, r.text)


@pytest.mark.parametrize("value", ["2147483648", "99999999999999999999", "-1", "1e3"])
async def test_last_event_id_is_bounded_like_after(http, dev, value):
    created = await http.post("/v1/agent-runs", json={"message": "balance"}, headers=auth(dev))
    assert created.status_code == 202, created.text
    r = await http.get(f"/v1/agent-runs/{created.json()['id']}/events", headers={**auth(dev), "Last-Event-ID": value})
    assert r.status_code == 422 and r.json()["error"]["field"] == "Last-Event-ID", r.text


async def _payment_rows(db_engine) -> int:
    async with db_engine.connect() as conn:
        return await conn.scalar(sa.select(sa.func.count()).select_from(payments))


async def test_duplicate_json_keys_are_refused_on_every_body(http, dev, db_engine):
    before = await _payment_rows(db_engine)
    body = payment_body(dev, new_recipient(), amount="0.01")
    text = '{"amount": "99999", ' + json.dumps(body)[1:]  # amount twice: "99999" first, "0.01" last
    r = await http.post(
        "/v1/payments",
        content=text.encode(),
        headers={**auth(dev), "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "amount" and "twice" in r.json()["error"]["message"]
    nested = '{"tiers": [{"max_amount": "1", "max_amount": "2", "approvals_required": 0}]}'
    r = await http.put(
        f"/v1/wallets/{dev['wallets']['treasury']['id']}/approval-policy",
        content=nested.encode(),
        headers={**auth(dev), "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "max_amount", r.text
    r = await http.post(  # no Content-Type: FastAPI would read it as JSON, so it is checked too
        "/v1/payments", content=text.encode(), headers={**auth(dev), "Idempotency-Key": uuid.uuid4().hex}
    )
    assert r.status_code == 422, r.text
    assert await _payment_rows(db_engine) == before


async def test_duplicate_json_keys_are_refused_at_mcp(http, dev):
    arguments = f'{{"to": "{new_recipient()}", "amount": "0.01", "amount": "99999", "asset": "USDC"}}'
    call = (
        f'{{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {{"name": "pay", "arguments": {arguments}}}}}'
    )

    r = await http.post(
        "/mcp",
        content=call.encode(),
        headers={
            **auth(dev),
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "amount", r.text


def _unbounded_integers(spec: dict, schema: dict, where: str, seen: set[str]) -> list[str]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        return _unbounded_integers(spec, spec["components"]["schemas"][name], where, seen | {name})
    found = []
    if schema.get("type") == "integer" and "maximum" not in schema and "exclusiveMaximum" not in schema:
        found.append(where)
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            found += _unbounded_integers(spec, option, where, seen)
    for name, prop in (schema.get("properties") or {}).items():
        found += _unbounded_integers(spec, prop, f"{where}.{name}", seen)
    if isinstance(schema.get("items"), dict):
        found += _unbounded_integers(spec, schema["items"], f"{where}[]", seen)
    return found


async def test_every_integer_in_a_request_body_is_bounded(http):
    spec = (await http.get("/openapi.json")).json()
    unbounded = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for content in (operation.get("requestBody") or {}).get("content", {}).values():
                unbounded += _unbounded_integers(spec, content.get("schema", {}), f"{method} {path} body", set())
    assert unbounded == []
