"""The lockout refuses failures, not people: an agent retrying its rotated, old key is throttled (429 after the
limit, from any address), while everyone else on its host keeps working: alice, the agent's new key, MCP and
the WebSocket, all from the same address."""

from __future__ import annotations

import uuid

import httpx2
import websockets
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.api.helpers import auth, serve_api
from tests.authz.test_rate_limits import from_address, limited
from tests.ws.helpers import recv, ws_url

HOST, ELSEWHERE = "127.0.0.21", "127.0.0.22"


async def _mcp_tools(api_url: str, key: str, local: str) -> list[str]:
    """The official MCP client, its connections leaving from `local`: the tools it lists."""
    client = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {key}"},
        transport=httpx2.AsyncHTTPTransport(local_address=local),
        timeout=30,
    )
    async with client, streamable_http_client(f"{api_url}/mcp", http_client=client) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return [t.name for t in (await session.list_tools()).tools]


async def _socket_ready(api_url: str, key: str, local: str) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    async with websockets.connect(ws_url(api_url), additional_headers=headers, local_addr=(local, 0)) as ws:
        return await recv(ws)


async def test_a_rotated_keys_retries_are_throttled_and_nobody_else_is(app_settings, temporal_env, dev):
    async with serve_api(limited(app_settings), temporal_env.client) as http:  # 5 failures a minute, address and key
        api_url = str(http.base_url).rstrip("/")
        created = await http.post(
            "/v1/agents",
            json={"name": f"rotated-{uuid.uuid4().hex[:6]}", "wallet_ids": [dev["wallets"]["treasury"]["id"]]},
            headers=auth(dev),
        )
        assert created.status_code == 201, created.text
        old_key = created.json()["api_key"]
        rotated = await http.post(f"/v1/agents/{created.json()['id']}/rotate-key", headers=auth(dev))
        assert rotated.status_code == 200, rotated.text
        new_key = rotated.json()["api_key"]

        async with from_address(http, HOST) as host, from_address(http, ELSEWHERE) as elsewhere:
            statuses = [
                (await host.get("/v1/wallets", headers={"Authorization": f"Bearer {old_key}"})).status_code
                for _ in range(30)
            ]
            assert statuses == [401] * 5 + [429] * 25, statuses
            refused = await host.get("/v1/wallets", headers={"Authorization": f"Bearer {old_key}"})
            assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 1

            # everyone else on that host is served, over every door
            assert (await host.get("/v1/wallets", headers=auth(dev))).status_code == 200  # alice
            assert (await host.get("/v1/wallets", headers={"Authorization": f"Bearer {new_key}"})).status_code == 200
            assert "pay" in await _mcp_tools(api_url, new_key, HOST)
            assert (await _socket_ready(api_url, dev["users"]["alice"]["api_key"], HOST))["type"] == "ready"
            assert (await _socket_ready(api_url, new_key, HOST))["type"] == "ready"

            # the old key is throttled wherever it comes from; another address's own mistakes are its own
            again = await elsewhere.get("/v1/wallets", headers={"Authorization": f"Bearer {old_key}"})
            assert again.status_code == 429, again.text
            typo = await elsewhere.get("/v1/wallets", headers={"Authorization": "Bearer pgk_typo"})
            assert typo.status_code == 401, typo.text
            # the host's further failures with any key are refused (the address limit), its valid keys are not
            other = await host.get("/v1/wallets", headers={"Authorization": "Bearer pgk_another"})
            assert other.status_code == 429, other.text
            assert (await host.get("/v1/wallets", headers=auth(dev, "bob"))).status_code == 200


async def test_a_socket_with_a_throttled_key_is_closed_4429(app_settings, temporal_env, dev):
    async with serve_api(limited(app_settings), temporal_env.client) as http:
        api_url = str(http.base_url).rstrip("/")
        for _ in range(5):
            r = await http.get("/v1/wallets", headers={"Authorization": "Bearer pgk_retired"})
            assert r.status_code == 401
        headers = {"Authorization": "Bearer pgk_retired"}
        async with websockets.connect(ws_url(api_url), additional_headers=headers) as ws:
            assert (await recv(ws))["code"] == "rate_limited"
            try:
                await recv(ws)
                raise AssertionError("the socket stayed open")
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 4429
