"""The client address is the socket's peer unless that peer is a proxy the operator named: a real `paygent api`
process (as `paygent stack up` starts it) ignores X-Forwarded-For by default, so forged headers neither dodge the
lockout nor lock out someone else; with PAYGENT_TRUSTED_PROXIES naming the proxy, the header is honoured, and
only from that proxy."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import sqlalchemy as sa

from paygent.db.schema import audit_log
from paygent.netutil import free_port
from paygent.paths import REPO_ROOT
from paygent.settings import Settings
from tests.authz.test_rate_limits import from_address

READY_SECONDS = 90  # a cold start imports a lot; on a machine busy with other suites it took over 30 s


@asynccontextmanager
async def paygent_api(app_settings, **env: str) -> AsyncIterator[httpx.AsyncClient]:
    """`python -m paygent.cli api` on a free port, against this session's database, Redis, chain and Temporal."""
    port = free_port()
    environment = {
        **os.environ,
        "PAYGENT_DATABASE_URL": app_settings.database_url,
        "PAYGENT_REDIS_URL": app_settings.redis_url,
        "PAYGENT_TEMPORAL_ADDRESS": app_settings.temporal_address,
        "PAYGENT_TASK_QUEUE": app_settings.task_queue,
        "PAYGENT_RPC_URL": app_settings.rpc_url,
        "PAYGENT_TOKEN_ADDRESS": app_settings.token_address,
        "PAYGENT_MASTER_KEY": app_settings.master_key.get_secret_value(),
        "PAYGENT_API_URL": f"http://127.0.0.1:{port}",
        "PAYGENT_RATE_LIMIT_PREFIX": f"fwd-{uuid.uuid4().hex[:8]}",
        "PAYGENT_RATE_LIMIT_AUTH_FAILURES": "5/minute",
        "PAYGENT_RATE_LIMIT_KEY_FAILURES": "5/minute",
        "PAYGENT_LOG_LEVEL": "WARNING",
        **env,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "paygent.cli", "api", cwd=str(REPO_ROOT), env=environment
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = asyncio.get_running_loop().time() + READY_SECONDS
            while True:
                assert proc.returncode is None, f"paygent api exited with {proc.returncode}"
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"paygent api did not answer /healthz within {READY_SECONDS} s")
                await asyncio.sleep(0.1)
            yield http
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def wrong(i: int, forwarded: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer pgk_wrong-{uuid.uuid4().hex}-{i}"}  # a new key each time: the address counts
    return {**headers, "X-Forwarded-For": forwarded} if forwarded else headers


async def _audited(db_engine, bucket: str) -> int:
    async with db_engine.connect() as conn:
        return await conn.scalar(
            sa.select(sa.func.count()).where(
                audit_log.c.action == "ratelimit.refused", audit_log.c.subject_id == bucket
            )
        )


async def test_forged_forwarded_headers_are_ignored_by_default(app_settings, dev, db_engine):
    before = await _audited(db_engine, "authfail:127.0.0.1")
    async with paygent_api(app_settings) as http, from_address(http, "127.0.0.55") as victim:
        statuses = [(await http.get("/v1/wallets", headers=wrong(i, f"10.1.0.{i}"))).status_code for i in range(40)]
        assert statuses == [401] * 5 + [429] * 35, statuses  # every attempt counted against 127.0.0.1
        # six failures "from" 127.0.0.55 by header count against the sender, not against the real 127.0.0.55
        for i in range(6):
            assert (await http.get("/v1/wallets", headers=wrong(i, "127.0.0.55"))).status_code == 429
        assert (await victim.get("/v1/wallets", headers=wrong(0))).status_code == 401
        alice = {"Authorization": f"Bearer {dev['users']['alice']['api_key']}"}
        assert (await victim.get("/v1/wallets", headers=alice)).status_code == 200
    assert await _audited(db_engine, "authfail:127.0.0.1") == before + 1  # sampled: one row for 41 refusals
    assert await _audited(db_engine, "authfail:10.1.0.39") == 0


async def test_a_named_proxy_is_believed_and_only_it(app_settings, dev, db_engine):
    before = await _audited(db_engine, "authfail:127.0.0.1")
    async with paygent_api(app_settings, PAYGENT_TRUSTED_PROXIES="127.0.0.1, 10.250.0.0/16") as http:
        # through the proxy: each client is its own address
        statuses = [(await http.get("/v1/wallets", headers=wrong(i, f"10.2.0.{i}"))).status_code for i in range(40)]
        assert statuses == [401] * 40, statuses
        blocked = [(await http.get("/v1/wallets", headers=wrong(i, "10.3.3.3"))).status_code for i in range(6)]
        assert blocked == [401] * 5 + [429]
        assert (await http.get("/v1/wallets", headers=wrong(0, "10.3.3.4"))).status_code == 401
        # a chain of proxies: the client is the right-most address that is not a trusted proxy
        chained = [
            (await http.get("/v1/wallets", headers=wrong(i, f"10.3.3.3, 10.250.1.{i}"))).status_code for i in range(2)
        ]
        assert chained == [429, 429]
        # a peer that is not a named proxy: its header is ignored, the peer's own address counts
        async with from_address(http, "127.0.0.66") as direct:
            forged = [(await direct.get("/v1/wallets", headers=wrong(i, f"10.4.0.{i}"))).status_code for i in range(6)]
            assert forged == [401] * 5 + [429]
    assert await _audited(db_engine, "authfail:10.3.3.3") == 1
    assert await _audited(db_engine, "authfail:127.0.0.66") == 1
    assert await _audited(db_engine, "authfail:127.0.0.1") == before


def test_a_malformed_proxy_list_fails_at_startup():
    with pytest.raises(ValueError, match="PAYGENT_TRUSTED_PROXIES"):
        Settings(trusted_proxies="127.0.0.1, proxy.internal")
