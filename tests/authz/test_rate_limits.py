"""Rate limits in Redis: wrong keys from one address are throttled hard (429 with Retry-After within the first
20 of 300), while valid keys keep working (tests/authz/test_lockout.py: the rotated-key scenario); a key's own budget; refusals audited sampled,
not per request; with Redis down the API keeps serving."""

from __future__ import annotations

import uuid

import httpx
import sqlalchemy as sa

from paygent.db.schema import audit_log
from tests.api.helpers import serve_api


def limited(app_settings, **extra):
    return app_settings.model_copy(
        update={
            "rate_limit_prefix": f"rl-test-{uuid.uuid4().hex[:8]}",
            "rate_limit_auth_failures": "5/minute",
            "rate_limit_key_failures": "5/minute",
            **extra,
        }
    )


def from_address(http: httpx.AsyncClient, address: str) -> httpx.AsyncClient:
    """A client of the same API whose connections leave from another loopback address."""
    return httpx.AsyncClient(
        base_url=http.base_url, timeout=30, transport=httpx.AsyncHTTPTransport(local_address=address)
    )


async def test_wrong_keys_are_throttled_per_address_and_valid_keys_elsewhere_still_work(
    app_settings, temporal_env, dev, db_engine
):
    async with serve_api(limited(app_settings), temporal_env.client) as http:
        async with from_address(http, "127.0.0.7") as attacker, from_address(http, "127.0.0.8") as user:
            statuses = []
            for i in range(300):
                r = await attacker.get("/v1/wallets", headers={"Authorization": f"Bearer pgk_wrong{i}"})
                statuses.append(r.status_code)
                if r.status_code == 429:
                    assert int(r.headers["Retry-After"]) >= 1
                    assert r.json()["error"]["code"] == "rate_limited"
            first = statuses.index(429)
            assert first < 20 and set(statuses[:first]) == {401} and set(statuses[first:]) == {429}, statuses[:25]
            # the attacker's failures stay refused, but a valid key from its address is served (api/ratelimit.py)
            alice = {"Authorization": f"Bearer {dev['users']['alice']['api_key']}"}
            assert (await attacker.get("/v1/wallets", headers=alice)).status_code == 200
            assert (await attacker.get("/v1/wallets", headers={"Authorization": "Bearer pgk_new"})).status_code == 429
            assert (await user.get("/v1/wallets", headers=alice)).status_code == 200
    async with db_engine.connect() as conn:
        audited = await conn.scalar(
            sa.select(sa.func.count()).where(
                audit_log.c.action == "ratelimit.refused", audit_log.c.subject_id == "authfail:127.0.0.7"
            )
        )
    assert audited == 1  # ~290 refusals, one audit row: sampled per bucket and minute


async def test_a_keys_budget_is_its_own(app_settings, temporal_env, dev):
    settings = limited(app_settings, rate_limit_per_key="10/minute")
    async with serve_api(settings, temporal_env.client) as http:
        bob = {"Authorization": f"Bearer {dev['users']['bob']['api_key']}"}
        carol = {"Authorization": f"Bearer {dev['users']['carol']['api_key']}"}
        statuses = [(await http.get("/v1/approvals", headers=bob)).status_code for _ in range(15)]
        assert statuses[:10] == [200] * 10 and statuses[10:] == [429] * 5
        assert (await http.get("/v1/approvals", headers=carol)).status_code == 200


async def test_with_redis_down_the_api_keeps_serving(app_settings, temporal_env, dev):
    from paygent.netutil import free_port

    down = limited(app_settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    async with serve_api(down, temporal_env.client) as http:
        alice = {"Authorization": f"Bearer {dev['users']['alice']['api_key']}"}
        for _ in range(3):
            assert (await http.get("/v1/wallets", headers=alice)).status_code == 200
        assert (await http.get("/v1/wallets", headers={"Authorization": "Bearer pgk_nope"})).status_code == 401
