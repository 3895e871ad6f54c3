"""Who reaches which scope, walking every memory route: private scopes per principal, shared scopes by grant
(given and revoked by admins), nothing across tenants. A refusal writes nothing."""

from __future__ import annotations

import sqlalchemy as sa

from paygent.db.memory_schema import memory_items
from tests.memory.helpers import bearer, fresh_scope, get, private, put


def _routes(scope: str) -> list[tuple[str, str, dict, dict | None, str]]:
    """(method, path, params, json, access needed) for every memory route that names a scope."""
    return [
        ("PUT", "/v1/memory/items", {}, {"scope": scope, "key": "k", "value": 1}, "write"),
        ("GET", "/v1/memory/items", {"scope": scope, "key": "k"}, None, "read"),
        ("DELETE", "/v1/memory/items", {"scope": scope, "key": "k"}, None, "write"),
        ("GET", "/v1/memory/search", {"scope": scope}, None, "read"),
        ("GET", "/v1/memory/partitions", {"scope": scope}, None, "read"),
        ("DELETE", "/v1/memory/partitions/p1", {"scope": scope}, None, "write"),
        ("POST", "/v1/memory/recall", {}, {"scope": scope, "query": "anything"}, "read"),
        ("POST", "/v1/memory/texts", {}, {"scope": scope, "text": "a fact"}, "write"),
        ("GET", "/v1/memory/stats", {"scope": scope}, None, "read"),
    ]


async def _count(db_engine, scope: str) -> int:
    async with db_engine.connect() as conn:
        return await conn.scalar(sa.select(sa.func.count()).where(memory_items.c.scope == scope))


async def _grant(http, admin_key: str, scope: str, agent: str, access: str):
    body = {"scope": scope, "agent": agent, "access": access}
    answer = await http.put("/v1/memory/grants", json=body, headers=bearer(admin_key))
    assert answer.status_code == 200, answer.text


async def test_private_scopes_belong_to_their_principal(http, dev, principals):
    alice, bob = dev["users"]["alice"]["api_key"], dev["users"]["bob"]["api_key"]
    agent = principals["agent"]["key"]
    scope = private()
    for key, text in ((alice, "alice's"), (bob, "bob's"), (agent, "shopper's")):
        assert (await put(http, key, scope, "note", text)).status_code == 200
    for key, text in ((alice, "alice's"), (bob, "bob's"), (agent, "shopper's")):
        assert (await get(http, key, scope, "note")).json()["value"] == text
    outsider = principals["outsider"]["key"]
    assert (await get(http, outsider, scope, "note")).status_code == 404
    assert (await get(http, alice, None, "note")).status_code == 404  # private/default is another scope


async def test_shared_scope_needs_a_grant_and_revoking_shuts_the_agent_out(http, dev, principals, db_engine):
    admin = dev["users"]["alice"]["api_key"]  # alice is an admin
    agent, agent_name = principals["agent"]["key"], "shopper"
    scope = fresh_scope("fleet")
    assert (await put(http, admin, scope, "price", 10)).status_code == 200

    async def walk(expect_write: int, expect_read: int) -> None:
        for method, path, params, body, need in _routes(scope):
            before = await _count(db_engine, scope)
            answer = await http.request(method, path, params=params, json=body, headers=bearer(agent))
            expected = expect_write if need == "write" else expect_read
            if expected == 403:
                assert answer.status_code == 403, (method, path, answer.text)
                assert answer.json()["error"]["field"] == "scope"
                assert await _count(db_engine, scope) == before, (method, path)
            else:
                assert answer.status_code not in (401, 403), (method, path, answer.text)

    await walk(expect_write=403, expect_read=403)
    await _grant(http, admin, scope, agent_name, "read")
    await walk(expect_write=403, expect_read=200)
    assert (await get(http, agent, scope, "price")).json()["value"] == 10
    await _grant(http, admin, scope.split("/")[0], agent_name, "write")  # a grant on the scope above covers it
    assert (await put(http, agent, scope, "price", 11, if_version=1)).json()["version"] == 2
    await _grant(http, admin, scope.split("/")[0], agent_name, "none")
    await _grant(http, admin, scope, agent_name, "none")
    await walk(expect_write=403, expect_read=403)  # the very next call is refused
    assert (await get(http, admin, scope, "price")).json()["value"] == 11


async def test_roles_on_shared_scopes_and_grants_are_for_admins(http, dev, principals, db_engine):
    scope = fresh_scope("team")
    admin = dev["users"]["alice"]["api_key"]
    assert (await put(http, admin, scope, "k", 1)).status_code == 200
    auditor, approver = principals["auditor"]["key"], principals["approver"]["key"]
    assert (await get(http, auditor, scope, "k")).status_code == 200  # auditors read every shared scope
    assert (await put(http, auditor, scope, "k", 2)).status_code == 403
    assert (await get(http, approver, scope, "k")).status_code == 403
    for who in ("auditor", "approver", "requester", "agent", "nobody"):
        answer = await http.put(
            "/v1/memory/grants",
            json={"scope": scope, "agent": "shopper", "access": "write"},
            headers=bearer(principals[who]["key"]),
        )
        assert answer.status_code == 403, (who, answer.text)
    outsider = principals["outsider"]["key"]  # another tenant's admin: its own shared scope of the same name
    assert (await get(http, outsider, scope, "k")).status_code == 404
    assert (await put(http, outsider, scope, "k", 99)).status_code == 200
    assert (await get(http, admin, scope, "k")).json()["value"] == 1
    private_grant = await http.put(
        "/v1/memory/grants", json={"scope": "private/x", "agent": "shopper", "access": "read"}, headers=bearer(admin)
    )
    assert private_grant.status_code == 422 and private_grant.json()["error"]["field"] == "scope"
    unknown = await http.put(
        "/v1/memory/grants", json={"scope": scope, "agent": "nobody-such", "access": "read"}, headers=bearer(admin)
    )
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "agent"
    async with db_engine.connect() as conn:
        rows = await conn.scalar(
            sa.text("SELECT count(*) FROM audit_log WHERE action = 'memory.grant_set' AND subject_id = :s"),
            {"s": scope},
        )
    assert rows == 0


async def test_every_memory_route_wants_a_key(http):
    for method, path, params, body, _ in _routes("x"):
        answer = await http.request(method, path, params=params, json=body)
        assert answer.status_code == 401, (method, path)
    answer = await http.put("/v1/memory/grants", json={"scope": "x", "agent": "a", "access": "read"})
    assert answer.status_code == 401
