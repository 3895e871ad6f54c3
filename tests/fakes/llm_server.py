"""A scripted fake of the Anthropic Messages and OpenAI Chat Completions endpoints, for the real SDKs to talk to.

Tests queue answers per provider (a reply with text and/or tool calls, malformed tool arguments, or an HTTP error
with an optional retry-after) and read back every request the server received, so they can assert that each LLM
step reached a provider exactly once. The server is FastAPI + uvicorn in a daemon thread on a socket bound to a
free port, so it serves sync and async tests alike and survives across event loops.

Use from any test package's conftest.py:

    from tests.fakes.llm_server import fake_llm, fake_llm_server  # noqa: F401  (pytest fixtures)

    async def test_x(fake_llm):
        fake_llm.script("anthropic", fail(529), tool("pay", to="0x..", amount="5"))
        settings = fake_llm.settings()          # both keys set, base URLs pointing here
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from paygent.settings import Settings
from tests.fakes import llm_wire

Provider = Literal["anthropic", "openai"]
ANTHROPIC_TEST_KEY = "sk-ant-fake-0123456789abcdef"
OPENAI_TEST_KEY = "sk-openai-fake-0123456789abcdef"
FAKE_ANTHROPIC_MODEL = "claude-fake-1"  # not a real model name, so the SDK's deprecation check stays quiet
FAKE_OPENAI_MODEL = "gpt-fake-1"


@dataclass
class FakeToolCall:
    """`arguments` is normally a dict; a str (OpenAI) or a non-object (Anthropic) scripts a malformed call."""

    name: str
    arguments: Any
    id: str | None = None


@dataclass
class Reply:
    text: str | None = None
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    delay: float = 0.0


@dataclass
class Fail:
    status: int
    message: str = "scripted failure"
    retry_after: str | None = None
    delay: float = 0.0


Answer = Reply | Fail


def fake_embedding(text: str, dimensions: int) -> list[float]:
    """What the fake's /v1/embeddings answers: numbers from the text's SHA-256, the same for the same text."""
    seed = hashlib.sha256(text.encode()).digest()
    return [((seed[i % 32] + i) % 17 - 8) / 8 for i in range(dimensions)]


def text(answer: str) -> Reply:
    return Reply(text=answer)


def tool(name: str, *, call_id: str | None = None, **arguments: Any) -> Reply:
    return Reply(tool_calls=[FakeToolCall(name, arguments, call_id)])


def malformed(name: str, raw: Any) -> Reply:
    """A tool call whose arguments are sent exactly as `raw` (e.g. '{"to": ' or '[1, 2]' or a list)."""
    return Reply(tool_calls=[FakeToolCall(name, raw)])


def fail(status: int, *, retry_after: str | None = None, message: str = "scripted failure", delay: float = 0.0) -> Fail:
    return Fail(status, message, retry_after, delay)


@dataclass
class SeenRequest:
    provider: Provider
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float = field(default_factory=time.monotonic)


class FakeLlmServer:
    """The server plus its script; thread-safe because handlers run on the server thread's event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Answer]] = {"anthropic": deque(), "openai": deque()}
        self._seen: list[SeenRequest] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = self._build_app()

    # -- script and records -------------------------------------------------------------------------------
    def script(self, provider: Provider, *answers: Answer) -> None:
        with self._lock:
            self._scripts[provider].extend(answers)

    def remaining(self, provider: Provider) -> int:
        with self._lock:
            return len(self._scripts[provider])

    def requests(self, provider: Provider | None = None) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self._seen if provider is None or r.provider == provider]

    def reset(self) -> None:
        with self._lock:
            for queue in self._scripts.values():
                queue.clear()
            self._seen.clear()

    # -- wiring -------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, *, anthropic: bool = True, openai: bool = True, **overrides: Any) -> Settings:
        """Settings whose providers point here; a provider turned off has no key (so the router skips it)."""
        values: dict[str, Any] = {
            "anthropic_api_key": SecretStr(ANTHROPIC_TEST_KEY) if anthropic else None,
            "anthropic_base_url": self.base_url,
            "openai_api_key": SecretStr(OPENAI_TEST_KEY) if openai else None,
            "openai_base_url": self.base_url + "/v1",
            "anthropic_model": FAKE_ANTHROPIC_MODEL,
            "openai_model": FAKE_OPENAI_MODEL,
        }
        values.update(overrides)
        return Settings().model_copy(update=values)

    def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-llm-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    # -- HTTP ---------------------------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/messages")
        async def anthropic_messages(request: Request) -> JSONResponse:
            return await self._answer("anthropic", request)

        @app.post("/v1/embeddings")
        async def openai_embeddings(request: Request) -> JSONResponse:
            body = await request.json()
            with self._lock:
                self._seen.append(SeenRequest("openai", request.url.path, dict(request.headers), body))
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            dims = int(body.get("dimensions") or 1536)
            data = [
                {"object": "embedding", "index": i, "embedding": fake_embedding(t, dims)} for i, t in enumerate(texts)
            ]
            usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
            return JSONResponse({"object": "list", "data": data, "model": body["model"], "usage": usage})

        @app.post("/v1/chat/completions")
        async def openai_chat(request: Request) -> JSONResponse:
            return await self._answer("openai", request)

        return app

    async def _answer(self, provider: Provider, request: Request) -> JSONResponse:
        body = await request.json()
        with self._lock:
            self._seen.append(SeenRequest(provider, request.url.path, dict(request.headers), body))
            answer = self._scripts[provider].popleft() if self._scripts[provider] else None
        if answer is None:  # a 418 is permanent: the test fails at once, naming the cause
            answer = Fail(418, f"fake server: no scripted answer left for {provider}")
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if isinstance(answer, Fail):
            headers = {"retry-after": answer.retry_after} if answer.retry_after is not None else {}
            return JSONResponse(
                llm_wire.error_body(provider, answer.status, answer.message), status_code=answer.status, headers=headers
            )
        calls = [(c.id, c.name, c.arguments) for c in answer.tool_calls]
        n = len(self.requests(provider))
        if provider == "anthropic":
            return JSONResponse(llm_wire.anthropic_message(n, body["model"], answer.text, calls))
        return JSONResponse(llm_wire.openai_completion(n, body["model"], answer.text, calls))


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLlmServer]:
    """One fake server per test session (starting it costs about 0.1 s)."""
    server = FakeLlmServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_llm(fake_llm_server: FakeLlmServer) -> Iterator[FakeLlmServer]:
    """The session's fake server with an empty script and no recorded requests."""
    fake_llm_server.reset()
    yield fake_llm_server
    fake_llm_server.reset()
