"""Two API processes (`python -m paygent.cli api`, as the stack and the compose file start it) behind no sticky
routing: whatever one process holds in memory must not decide anything that the other can contradict.

- a WebSocket on replica A receives every event of an agent run started through replica B, including the
  approval events of decisions made through B (events go through Postgres and Redis Streams, not the process);
- 50 concurrent duplicates of one payment (same Idempotency-Key), split across both, make one payment and one
  transfer;
- a key's request budget and the failed-authentication limit are shared (Redis), and a key rotated through A is
  refused by B on the next request (the principal cache's generation is in Redis).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest_asyncio
import sqlalchemy as sa

from paygent.db.policies import save_policy
from paygent.db.schema import payments
from tests.api.helpers import auth, funded_wallet, new_recipient, payment_body, transfers_to, wait_final
from tests.authz.test_forwarded_address import paygent_api
from tests.ws.conftest import TWO_OF_THREE_THEN_TIMELOCK
from tests.ws.helpers import connect, events_of, finished, send, until
from tests.ws.test_approval_events import approve, of_type

DUPLICATES = 50


@asynccontextmanager
async def replicas(app_settings, **env: str) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two `paygent api` processes sharing one rate-limit namespace in Redis (as two replicas of one deployment)."""
    shared = {
        "PAYGENT_RATE_LIMIT_PREFIX": f"replicas-{uuid.uuid4().hex[:8]}",
        "PAYGENT_RATE_LIMIT_AUTH_FAILURES": "100000/minute",
        "PAYGENT_RATE_LIMIT_KEY_FAILURES": "100000/minute",
        # small pools: bursts wait for a connection instead of using up the max_connections of the Postgres
        # that every test suite on the machine shares (seen: 500s from "remaining connection slots are reserved")
        "PAYGENT_DB_POOL_SIZE": "4",
        "PAYGENT_DB_POOL_OVERFLOW": "4",
        **env,
    }
    async with AsyncExitStack() as stack:
        a, b = await asyncio.gather(
            stack.enter_async_context(paygent_api(app_settings, **shared)),
            stack.enter_async_context(paygent_api(app_settings, **shared)),
        )
        assert a.base_url != b.base_url
        yield a, b


@pytest_asyncio.fixture(scope="module")
async def pair(app_settings, worker) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with replicas(app_settings) as both:
        yield both


def ws_base(http: httpx.AsyncClient) -> str:
    return str(http.base_url).rstrip("/")


async def test_a_socket_on_one_replica_sees_a_run_started_and_approved_through_the_other(
    pair, http, dev, app_settings, db_engine
):
    a, b = pair
    wallet = await funded_wallet(http, dev, app_settings, 1_000)
    async with db_engine.begin() as conn:
        await save_policy(
            conn, dev["tenant"]["id"], TWO_OF_THREE_THEN_TIMELOCK, actor="test", channel="api", wallet_id=wallet["id"]
        )
    to = new_recipient()
    async with connect(ws_base(a), dev["users"]["alice"]["api_key"]) as ws:
        started = await b.post(
            "/v1/agent-runs",
            headers=auth(dev),
            json={"message": f"pay 150 USDC to {to} for the audit", "wallet_id": wallet["id"]},
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        await send(ws, {"type": "resume", "run_id": run_id, "last_seq": 0, "ref": "follow"})
        seen = await until(ws, lambda m: m["type"] == "approval_requested")
        assert seen[0]["type"] == "resuming" and seen[0]["run_id"] == run_id
        payment_id = seen[-1]["data"]["payment_id"]

        await approve(b, dev, "bob", payment_id)
        seen += await until(ws, lambda m: m["type"] == "approval_progress")
        await approve(b, dev, "carol", payment_id)
        seen += await until(ws, finished(run_id), timeout=90)
    events = events_of(seen, run_id)
    progress = [e["data"]["approver"] for e in of_type(events, "approval_progress")]
    assert progress == ["bob", "carol"]
    assert of_type(events, "approval_decided")[0]["data"]["decision"] == "approved"
    assert of_type(events, "payment_time_locked")[0]["data"]["approved_by"] == ["bob", "carol"]
    assert events[-1]["type"] == "agent_completed" and seen[-1]["status"] == "completed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # each event once, in order
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 1


async def test_fifty_duplicates_split_across_replicas_make_one_payment(pair, dev, app_settings, db_engine):
    a, b = pair
    to = new_recipient()
    key = f"dup-{uuid.uuid4().hex}"
    body = payment_body(dev, to, "0.75")
    headers = {**auth(dev), "Idempotency-Key": key}
    answers = await asyncio.gather(
        *((a if i % 2 else b).post("/v1/payments", json=body, headers=headers) for i in range(DUPLICATES))
    )
    assert [r.status_code for r in answers] == [202] * DUPLICATES, [r.text for r in answers if r.status_code != 202]
    ids = {r.json()["id"] for r in answers}
    assert len(ids) == 1
    (pid,) = ids
    assert (await wait_final(a, dev, pid))["status"] == "confirmed"
    async with db_engine.connect() as conn:
        rows = await conn.scalar(
            sa.select(sa.func.count()).select_from(payments).where(payments.c.idempotency_key == key)
        )
    assert rows == 1
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 1


async def test_rate_limits_and_key_rotation_hold_across_replicas(app_settings, worker, dev):
    budget = 20
    async with replicas(
        app_settings,
        PAYGENT_RATE_LIMIT_PER_KEY=f"{budget}/hour",
        PAYGENT_RATE_LIMIT_AUTH_FAILURES="6/hour",
    ) as (a, b):
        bob = auth(dev, "bob")
        answers = await asyncio.gather(*((a if i % 2 else b).get("/v1/approvals", headers=bob) for i in range(40)))
        codes = Counter(r.status_code for r in answers)
        assert codes == {200: budget, 429: 40 - budget}, codes  # one budget, not one per replica
        assert {r.headers.get("Retry-After") is not None for r in answers if r.status_code == 429} == {True}
        assert (await a.get("/v1/approvals", headers=auth(dev, "carol"))).status_code == 200  # bob's budget only

        created = await a.post("/v1/agents", headers=auth(dev), json={"name": f"replica-{uuid.uuid4().hex[:8]}"})
        assert created.status_code == 201, created.text
        agent = created.json()
        old = {"Authorization": f"Bearer {agent['api_key']}"}
        assert (await b.get("/v1/wallets", headers=old)).status_code == 200  # B now remembers the key
        rotated = await a.post(f"/v1/agents/{agent['id']}/rotate-key", headers=auth(dev))
        assert rotated.status_code == 200, rotated.text
        assert (await b.get("/v1/wallets", headers=old)).status_code == 401  # B forgot it on the next request
        new = {"Authorization": f"Bearer {rotated.json()['api_key']}"}
        assert (await b.get("/v1/wallets", headers=new)).status_code == 200

        wrong = [
            (await (a if i % 2 else b).get("/v1/wallets", headers={"Authorization": f"Bearer pgk_x{i}"})).status_code
            for i in range(10)
        ]
        # failures from this address are counted once, whichever replica: the rotated key's 401 above was the
        # first of 6. Last in the test: past this, 127.0.0.1's failures answer 429, not 401 (api/ratelimit.py)
        assert wrong == [401] * 5 + [429] * 5
