"""Fixtures for the reconciler tests: the misbehaving x402 server, a webhook receiver, reconcile runs.

Everything is real: the server is the SDK's middleware and facilitator on the session's anvil, reconcile runs
are `ReconcileWorkflow` executions on the session's worker (or a test's own worker), read back over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest_asyncio
import uvicorn
from eth_account import Account
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paygent.chain.anvil import dev_account
from paygent.netutil import free_port
from tests.api.helpers import auth
from tests.egress import exempt
from tests.reconcile.misbehaving_x402 import create_misbehaving_service
from workflows import reconcile_types as r

FACILITATOR_INDEX = 8  # not the paid service's facilitator (9): its nonces stay its own
SETTLE_AFTER = 5.0
MAX_TIMEOUT_SECONDS = 20  # the signed authorization's validBefore is this far ahead


@dataclass
class Served:
    url: str
    pay_to: str


async def serve(app) -> tuple[uvicorn.Server, asyncio.Task, int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, port


@pytest_asyncio.fixture
async def misbehaving(anvil_rpc: str, token_address: str, app_settings) -> AsyncIterator[Served]:
    """The misbehaving server on loopback, exempted from the egress policy for the test (as an operator would)."""
    pay_to = Account.from_key(os.urandom(32)).address
    app = create_misbehaving_service(
        anvil_rpc,
        token_address,
        pay_to,
        dev_account(FACILITATOR_INDEX).key.hex(),
        settle_after=SETTLE_AFTER,
        max_timeout_seconds=MAX_TIMEOUT_SECONDS,
    )
    server, task, port = await serve(app)
    url = f"http://127.0.0.1:{port}"
    with exempt(app_settings, url):
        yield Served(url=url, pay_to=pay_to)
    await asyncio.gather(*app.state.settlements, return_exceptions=True)
    server.should_exit = True
    await task


@dataclass
class Hook:
    id: str
    events: list[dict] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("type") == kind]


@pytest_asyncio.fixture
async def webhook(http, dev, app_settings) -> AsyncIterator[Hook]:
    """A receiver registered through the API for the dev tenant (its loopback address exempted from the egress
    policy); deactivated after the test."""
    hook = Hook(id="")

    async def receive(request: Request) -> Response:
        hook.events.append(json.loads(await request.body()))
        return Response(status_code=204)

    server, task, port = await serve(Starlette(routes=[Route("/hook", receive, methods=["POST"])]))
    url = f"http://127.0.0.1:{port}/hook"
    with exempt(app_settings, url):
        r_ = await http.post("/v1/webhooks", headers=auth(dev), json={"url": url})
        assert r_.status_code == 201, r_.text
        hook.id = r_.json()["id"]
        yield hook
        await http.delete(f"/v1/webhooks/{hook.id}", headers=auth(dev))
    server.should_exit = True
    await task


async def reconcile_once(client, task_queue: str) -> r.ReconcileResult:
    return await client.execute_workflow(
        r.WORKFLOW_NAME,
        r.ReconcileInput(),
        id=f"reconcile-test-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        result_type=r.ReconcileResult,
    )


async def reconcile_until(client, task_queue: str, done: Callable, timeout: float = 60, what: str = "") -> None:
    """Run reconcile ticks (as the schedule would) until `await done()` is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await reconcile_once(client, task_queue)
        if await done():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reconciled after {timeout}s: {what}")
        await asyncio.sleep(0.5)
