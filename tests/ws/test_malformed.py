"""Malformed frames get an `error` naming the field, and the socket stays open; authentication is the HTTP
API's (header or first message), and failed attempts count toward the same per-address limit."""

from __future__ import annotations

import json
import uuid

import pytest
import websockets

from tests.api.helpers import serve_api
from tests.ws.helpers import connect, finished, recv, send, start, until, ws_url

BAD_FRAMES = [
    ("not json", "frame"),
    ("[1, 2]", "frame"),
    ("x" * 70_000, "frame"),
    ("[" + "9" * 5000 + "]", "frame"),  # JSON, but over Python's 4300-digit limit for int
    ('{"message": "balance"}', "type"),
    ('{"type": "launch"}', "type"),
    ('{"type": "start_agent"}', "message"),
    ('{"type": "start_agent", "message": 5}', "message"),
    ('{"type": "start_agent", "message": ""}', "message"),
    ('{"type": "start_agent", "message": "   "}', "message"),
    ('{"type": "start_agent", "message": "balance", "colour": "red"}', "colour"),
    ('{"type": "start_agent", "message": "balance", "max_steps": 0}', "max_steps"),
    ('{"type": "start_agent", "message": "balance", "thread_id": "nope"}', "thread_id"),
    ('{"type": "start_agent", "message": "balance", "wallet_id": "nope"}', "wallet_id"),
    ('{"type": "user_message", "message": "balance"}', "thread_id"),
    ('{"type": "resume", "last_seq": 1}', "run_id"),
    ('{"type": "resume", "run_id": "x", "last_seq": -1}', "last_seq"),
    ('{"type": "resume", "run_id": "x", "last_seq": 2147483648}', "last_seq"),  # past agent_run_events.seq
    ('{"type": "ping", "ref": "a", "ref": "b"}', "ref"),  # a key twice
    (json.dumps({"type": "resume", "run_id": str(uuid.uuid4()), "last_seq": 0}), "run_id"),
    ('{"type": "cancel"}', "run_id"),
    ('{"type": "auth", "api_key": "again"}', "type"),
]


async def test_malformed_frames_get_an_error_naming_the_field_and_the_socket_stays_open(api_url, dev):
    async with connect(api_url, dev["users"]["alice"]["api_key"]) as ws:
        for frame, field in BAD_FRAMES:
            await send(ws, frame)
            error = await recv(ws)
            assert error["type"] == "error" and error["field"] == field, (frame[:80], error)
            assert error["message"], error
        await ws.send(b"\x00\x01 binary")
        error = await recv(ws)
        assert error["field"] == "frame" and "binary" in error["message"]
        await send(ws, {"type": "start_agent", "message": "balance", "colour": "red", "ref": "mine"})
        assert (await recv(ws))["ref"] == "mine"  # the client's ref comes back with the error
        run_id = await start(ws, "balance")  # after all that, the socket still works
        assert (await until(ws, finished(run_id)))[-1]["status"] == "completed"


async def test_the_key_may_come_in_the_first_message(api_url, dev):
    async with connect(api_url, None, expect_ready=False) as ws:
        await send(ws, {"type": "auth", "api_key": dev["users"]["alice"]["api_key"]})
        ready = await recv(ws)
        assert ready["type"] == "ready" and ready["principal"] == "alice"
        assert ready["limits"]["outbox"] > 0


@pytest.mark.parametrize(
    "key, first, field",
    [
        ("not-a-key", None, "Authorization"),
        (None, {"type": "start_agent", "message": "balance"}, "type"),
        (None, {"type": "auth", "api_key": "not-a-key"}, "api_key"),
    ],
)
async def test_a_socket_without_a_valid_key_is_told_why_and_closed(api_url, key, first, field):
    async with connect(api_url, key, expect_ready=False) as ws:
        if first is not None:
            await send(ws, first)
        error = await recv(ws)
        assert error["type"] == "error" and error["code"] == "unauthenticated" and error["field"] == field
        assert "not-a-key" not in json.dumps(error)  # keys never come back
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd.code == 4401


async def test_failed_socket_authentications_count_toward_the_address_limit(app_settings, temporal_env, dev):
    """Failures over the socket and over HTTP are one count; past it further failures are refused (4429), while a
    valid key is still served."""
    settings = app_settings.model_copy(
        update={"rate_limit_auth_failures": "3/minute", "rate_limit_prefix": f"ws-rl-{uuid.uuid4().hex[:8]}"}
    )
    async with serve_api(settings, temporal_env.client) as http:
        api_url = str(http.base_url).rstrip("/")
        for _ in range(3):
            async with connect(api_url, "wrong", expect_ready=False) as ws:
                assert (await recv(ws))["code"] == "unauthenticated"
        async with websockets.connect(
            ws_url(api_url), additional_headers={"Authorization": "Bearer wrong-again"}
        ) as ws:
            refused = await recv(ws)  # a further failure from this address, until the window passes
            assert refused["code"] == "rate_limited"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd.code == 4429
        async with connect(api_url, dev["users"]["alice"]["api_key"]) as ws:  # a good key is served (ready)
            await send(ws, {"type": "ping"})
            assert (await recv(ws))["type"] == "pong"
        r = await http.get("/v1/wallets", headers={"Authorization": "Bearer pgk_wrong"})
        assert r.status_code == 429  # the HTTP API counts the same failures
