"""Two tenants, two users each: nobody reads or touches another's threads, runs or events (every endpoint)."""

from __future__ import annotations

import uuid

import pytest_asyncio

from paygent.db.seed import seed_dev
from tests.agents.helpers import new_requester, wait_run


@pytest_asyncio.fixture(scope="module")
async def people(app_settings, dev) -> dict[str, str]:
    """API keys of alice and of a second requester ("bob") in the dev tenant and in a second tenant."""
    other = await seed_dev(
        app_settings.owner_database_url(), app_settings.master_key_bytes(), tenant_name=f"acme-{uuid.uuid4().hex[:6]}"
    )
    keys = {}
    for tenant, seeded in (("dev", dev), ("acme", other)):
        keys[f"{tenant}/alice"] = seeded["users"]["alice"]["api_key"]
        keys[f"{tenant}/bob"] = await new_requester(app_settings, seeded["tenant"]["id"])
    return keys


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_nobody_reaches_anothers_threads_runs_or_events(http, people):
    owned: dict[str, dict] = {}
    for who, key in people.items():
        run = await http.post("/v1/agent-runs", json={"message": "health"}, headers=bearer(key))
        assert run.status_code == 202, run.text
        spare = await http.post("/v1/threads", json={"title": f"{who} notes"}, headers=bearer(key))
        assert spare.status_code == 201
        owned[who] = {"run": run.json(), "spare": spare.json()["id"]}
    for who, mine in owned.items():
        final = await wait_run(http, None, mine["run"]["id"], headers=bearer(people[who]))
        assert final["status"] == "completed" and "Health: ok" in final["answer"]

    for owner, mine in owned.items():
        run_id, thread_id, spare = mine["run"]["id"], mine["run"]["thread_id"], mine["spare"]
        for who, key in people.items():
            if who == owner:
                continue
            h = bearer(key)
            attempts = [
                await http.get(f"/v1/agent-runs/{run_id}", headers=h),
                await http.post(f"/v1/agent-runs/{run_id}/cancel", headers=h),
                await http.get(f"/v1/agent-runs/{run_id}/events", headers=h),
                await http.get(f"/v1/agent-runs/{run_id}/events", headers={**h, "Last-Event-ID": "1"}),
                await http.get(f"/v1/threads/{thread_id}", headers=h),
                await http.get(f"/v1/threads/{thread_id}/messages", headers=h),
                await http.post(f"/v1/threads/{spare}/archive", headers=h),
                await http.delete(f"/v1/threads/{spare}", headers=h),
                await http.post("/v1/agent-runs", json={"message": "hi", "thread_id": thread_id}, headers=h),
            ]
            assert [a.status_code for a in attempts] == [404] * len(attempts), (owner, who)
            listed = await http.get("/v1/threads?include_archived=true&limit=100", headers=h)
            assert {thread_id, spare}.isdisjoint(t["id"] for t in listed.json()["threads"])

    # the owners still have everything, untouched
    for owner, mine in owned.items():
        h = bearer(people[owner])
        assert (await http.get(f"/v1/threads/{mine['spare']}", headers=h)).json()["archived"] is False
        messages = (await http.get(f"/v1/threads/{mine['run']['thread_id']}/messages", headers=h)).json()
        assert [m["role"] for m in messages["messages"]] == ["user", "assistant", "tool", "assistant"]


async def test_threads_list_newest_first_with_cursor_archive_and_delete(http, dev, app_settings):
    h = {"Authorization": f"Bearer {await new_requester(app_settings, dev['tenant']['id'])}"}
    made = [(await http.post("/v1/threads", json={"title": f"t{i}"}, headers=h)).json()["id"] for i in range(5)]
    page1 = (await http.get("/v1/threads?limit=2", headers=h)).json()
    page2 = (await http.get(f"/v1/threads?limit=2&cursor={page1['next_cursor']}", headers=h)).json()
    page3 = (await http.get(f"/v1/threads?limit=2&cursor={page2['next_cursor']}", headers=h)).json()
    seen = [t["id"] for p in (page1, page2, page3) for t in p["threads"]]
    assert seen == made[::-1] and page3["next_cursor"] is None
    bad = await http.get("/v1/threads?cursor=nope", headers=h)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"

    archived = await http.post(f"/v1/threads/{made[0]}/archive", headers=h)
    assert archived.status_code == 200 and archived.json()["archived"] is True
    assert made[0] not in [t["id"] for t in (await http.get("/v1/threads", headers=h)).json()["threads"]]
    refused = await http.post("/v1/agent-runs", json={"message": "hi", "thread_id": made[0]}, headers=h)
    assert refused.status_code == 409 and refused.json()["error"]["field"] == "thread_id"

    started = await http.post("/v1/agent-runs", json={"message": "list tools", "thread_id": made[1]}, headers=h)
    assert started.status_code == 202, started.text
    run = started.json()
    assert (await wait_run(http, None, run["id"], headers=h))["answer"].startswith("Tools available")
    assert (await http.delete(f"/v1/threads/{made[1]}", headers=h)).status_code == 204
    assert (await http.get(f"/v1/threads/{made[1]}", headers=h)).status_code == 404
    assert (await http.get(f"/v1/agent-runs/{run['id']}", headers=h)).status_code == 404
