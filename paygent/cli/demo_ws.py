"""The demo's WebSocket step: an agent run (offline planner) started and followed over `GET /v1/ws`.

A client needs only the API URL and a key: it connects with `Authorization: Bearer`, sends `start_agent`, and
prints every event as it arrives (the same one-line descriptions as `paygent run`) until `run_finished`.
"""

from __future__ import annotations

import asyncio
import json

import websockets
from eth_account import Account

from paygent.cli.runs import describe


async def stream_run_over_websocket(dev: dict, *, as_user: str = "alice", timeout: float = 120) -> dict:
    """Start a paying run over the WebSocket and print its events; returns the final `run_finished` message."""
    url = dev["api_url"].replace("http", "ws", 1) + "/v1/ws"
    key = dev["users"][as_user]["api_key"]
    message = f"pay 1 USDC to {Account.create().address} for the WebSocket demo"
    print(f"\n==> {as_user} starts an agent run over the WebSocket ({url}): {message!r}")
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        async with asyncio.timeout(timeout):
            print(f"    <- {json.loads(await ws.recv())['type']}")
            await ws.send(json.dumps({"type": "start_agent", "message": message, "ref": "demo"}))
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "error":
                    raise SystemExit(f"the WebSocket refused: {msg['field']}: {msg['message']}")
                if msg["type"] == "run_started":
                    print(f"    <- run_started: run {msg['run_id']}")
                elif msg["type"] == "run_finished":
                    print(f"    <- run_finished: {msg['status']} after {msg['last_seq']} events")
                    break
                elif "seq" in msg:
                    for line in describe(msg).strip().splitlines():
                        print(f"    <- #{msg['seq']} {msg['type']}: {line.strip()}")
    if msg["status"] != "completed":
        raise SystemExit(f"the WebSocket run ended {msg['status']}")
    return msg
