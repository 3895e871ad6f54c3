"""Liveness and readiness as a load balancer and an operator see them, with real dependencies up and down.

"Down" is real: the app is served with settings that point Redis, the chain or Postgres at a port where
nothing listens (`free_port`), next to the session's real Temporal.
"""

from __future__ import annotations

from paygent.netutil import free_port
from tests.api.helpers import auth, serve_api

NOWHERE = f"127.0.0.1:{free_port()}"
INTERNALS = ("127.0.0.1", "localhost", "Error", "migration", "namespace")


async def test_healthz_is_liveness_only(http):
    r = await http.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_readyz_summary_for_anyone_without_internals(http):
    r = await http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "ok",
        "components": {"postgres": "up", "temporal": "up", "redis": "up", "chain": "up"},
    }
    assert not any(word in r.text for word in INTERNALS), r.text


async def test_readyz_details_for_an_admin(http, dev):
    r = await http.get("/readyz", headers=auth(dev, "alice"))
    assert r.status_code == 200, r.text
    details = r.json()["details"]
    assert set(details) == {"postgres", "temporal", "redis", "chain"}
    assert all(d["up"] and d["latency_ms"] >= 0 for d in details.values())
    assert details["postgres"]["info"].startswith("migration ")
    assert details["chain"]["info"].startswith("chain 31337 block ")


async def test_readyz_answers_any_other_key_like_an_anonymous_probe(http, dev):
    anonymous = await http.get("/readyz")
    for headers in (
        auth(dev, "bob"),  # an approver
        auth(dev, "erin"),  # an auditor
        {"Authorization": f"Bearer {dev['agents']['shopper']['api_key']}"},  # an agent
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Basic bm9ib2R5"},
    ):
        r = await http.get("/readyz", headers=headers)
        assert (r.status_code, r.json()) == (anonymous.status_code, anonymous.json()), (headers, r.text)
        assert "details" not in r.json()


async def test_redis_and_chain_down_is_degraded_but_ready(app_settings, temporal_env, dev):
    settings = app_settings.model_copy(update={"redis_url": f"redis://{NOWHERE}/0", "rpc_url": f"http://{NOWHERE}"})
    async with serve_api(settings, temporal_env.client) as http:
        r = await http.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json() == {
            "status": "degraded",
            "components": {"postgres": "up", "temporal": "up", "redis": "down", "chain": "down"},
        }
        assert NOWHERE not in r.text and "Error" not in r.text  # no address, no raw error to anonymous callers
        admin = (await http.get("/readyz", headers=auth(dev, "alice"))).json()
        assert admin["details"]["redis"]["up"] is False and admin["details"]["redis"]["error"]
        assert (await http.get("/healthz")).status_code == 200


async def test_postgres_down_is_not_ready(app_settings, temporal_env, dev):
    dead_db = f"postgresql+asyncpg://postgres@{NOWHERE}/paygent"
    async with serve_api(app_settings.model_copy(update={"database_url": dead_db}), temporal_env.client) as http:
        r = await http.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["status"] == "unavailable" and r.json()["components"]["postgres"] == "down"
        # a key cannot be checked without Postgres: the caller gets the summary, not an error
        r = await http.get("/readyz", headers=auth(dev, "alice"))
        assert r.status_code == 503 and "details" not in r.json()
        for headers in (auth(dev, "bob"), {"Authorization": "Bearer not-a-key"}):  # the same 503, never 401/403
            r = await http.get("/readyz", headers=headers)
            assert r.status_code == 503 and r.json()["status"] == "unavailable", r.text
        assert (await http.get("/healthz")).status_code == 200
