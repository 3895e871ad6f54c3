"""A JSON-RPC pass-through to anvil that can hold `eth_sendRawTransaction` calls: it lets a test stop a worker
right after it persisted a signed transaction and before the node ever saw it. It can also drop sends (answer
them as accepted and forward nothing), like a node that loses a transaction. And it can answer `eth_call` late
or with an error, like a loaded node."""

from __future__ import annotations

import asyncio
import json

import httpx
import uvicorn
from eth_utils import keccak
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paygent.netutil import free_port


class RpcProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.release = asyncio.Event()
        self.release.set()
        self.held = 0
        self.dropping = False  # drop_sends(): answer sends as accepted, but the node never sees them
        self.dropped: list[str] = []
        self.call_delay = 0.0  # slow_calls(): every eth_call answers this many seconds late (a loaded node)
        self.failing_calls = False  # fail_calls(): every eth_call answers with a JSON-RPC error
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._client = httpx.AsyncClient(timeout=30)
        app = Starlette(routes=[Route("/", self._forward, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))

    def hold_sends(self) -> None:
        self.release.clear()

    def release_sends(self) -> None:
        self.release.set()

    def drop_sends(self) -> None:
        """A node that accepts transactions and loses them: sends get their hash back and go nowhere."""
        self.dropping = True

    def stop_dropping(self) -> None:
        self.dropping = False

    def slow_calls(self, seconds: float) -> None:
        self.call_delay = seconds

    def fail_calls(self, failing: bool = True) -> None:
        self.failing_calls = failing

    async def _forward(self, request: Request) -> Response:
        body = await request.body()
        methods = {c.get("method") for c in (json.loads(body) if body.startswith(b"[") else [json.loads(body)])}
        if "eth_sendRawTransaction" in methods and self.dropping and not body.startswith(b"["):
            call = json.loads(body)
            raw = call["params"][0]
            self.dropped.append(raw)
            tx_hash = "0x" + keccak(bytes.fromhex(raw.removeprefix("0x"))).hex()
            return Response(
                json.dumps({"jsonrpc": "2.0", "id": call.get("id"), "result": tx_hash}), media_type="application/json"
            )
        if "eth_call" in methods and self.failing_calls and not body.startswith(b"["):
            error = {"code": -32603, "message": "node overloaded"}
            answer = {"jsonrpc": "2.0", "id": json.loads(body).get("id"), "error": error}
            return Response(json.dumps(answer), media_type="application/json")
        if "eth_call" in methods and self.call_delay:
            await asyncio.sleep(self.call_delay)
        if "eth_sendRawTransaction" in methods and not self.release.is_set():
            self.held += 1
            await self.release.wait()
            return Response(status_code=503)  # the caller that was held is long gone; never forward it
        upstream = await self._client.post(self.upstream, content=body, headers={"content-type": "application/json"})
        return Response(upstream.content, status_code=upstream.status_code, media_type="application/json")

    async def __aenter__(self) -> RpcProxy:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc) -> None:
        self.release.set()
        self._server.should_exit = True
        await self._task
        await self._client.aclose()
