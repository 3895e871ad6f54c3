"""Egress policy through the real API and worker: refused destinations never get a connection.

A raw TCP listener on 127.0.0.1 and ::1 (same port) counts every connection that arrives; each refused URL form
points at it (or at an address that must never be dialled) and must come back 422 naming `url`, with no payment
or webhook recorded and not one connection at the listener. An exempted local server works; a redirect from an
allowed server to a refused address is not followed; an exemption withdrawn after the API accepted a URL (as a
DNS answer that changes later would) ends the payment `refused` with the reason, before the signed
authorization is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
import pytest_asyncio
import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from paygent.db.schema import payments, webhooks
from paygent.egress import EgressPolicy, EgressRefused
from paygent.netutil import free_port
from tests.api.helpers import auth, create, funded_wallet, new_recipient, payment_body, token_balance, wait_final
from tests.approvals.helpers import approval, decide, until
from tests.egress import exempt, host_port


class Listener:
    """Accepts TCP connections on 127.0.0.1 and ::1 and counts them (a refused URL must add none)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        self._server = await asyncio.start_server(self._accept, host=["127.0.0.1", "::1"], port=self.port)
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def __aexit__(self, *exc) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def refused_forms(port: int) -> list[str]:
    """Every form of a forbidden destination: numeric spellings of loopback at the listener, and the ranges."""
    return [
        f"http://127.0.0.1:{port}/x",
        f"http://localhost:{port}/x",
        f"http://2130706433:{port}/x",
        f"http://0x7f000001:{port}/x",
        f"http://0177.0.0.1:{port}/x",
        f"http://017700000001:{port}/x",
        f"http://127.1:{port}/x",
        f"http://0x7f.1:{port}/x",
        f"http://[::1]:{port}/x",
        f"http://[::ffff:127.0.0.1]:{port}/x",
        f"http://[::ffff:7f00:1]:{port}/x",
        f"http://0.0.0.0:{port}/x",
        f"http://0:{port}/x",
        f"http://[::]:{port}/x",
        f"https://127.0.0.1:{port}/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://[fc00::1]/",
        "http://224.0.0.1/",
        "http://[ff02::1]/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://192.0.2.1/",
        "http://198.18.0.1/",
        "http://[2001:db8::1]/",
        "http://[::ffff:169.254.169.254]/",
        "ftp://example.com/x",
        "file:///etc/passwd",
    ]


def x402_body(dev, url: str, wallet_id: str | None = None) -> dict:
    return {
        "kind": "x402",
        "wallet_id": wallet_id or dev["wallets"]["treasury"]["id"],
        "url": url,
        "max_amount": "0.05",
        "memo": "egress test",
    }


@pytest_asyncio.fixture
async def listener():
    async with Listener() as lst:
        yield lst


async def test_refused_urls_get_422_naming_url_and_no_connection(http, dev, db_engine, listener):
    forms = refused_forms(listener.port)
    keys = []
    for url in forms:
        key = f"egress-{uuid.uuid4().hex}"
        keys.append(key)
        r = await create(http, dev, x402_body(dev, url), key=key)
        assert r.status_code == 422, (url, r.text)
        error = r.json()["error"]
        assert error["field"] == "url" and error["message"].startswith("url: "), (url, error)
        w = await http.post("/v1/webhooks", headers=auth(dev), json={"url": url})
        assert w.status_code == 422 and w.json()["error"]["field"] == "url", (url, w.text)
    async with db_engine.connect() as conn:
        recorded = await conn.scalar(
            sa.select(sa.func.count()).select_from(payments).where(payments.c.idempotency_key.in_(keys))
        )
        hooks = await conn.scalar(sa.select(sa.func.count()).select_from(webhooks).where(webhooks.c.url.in_(forms)))
    assert recorded == 0 and hooks == 0
    await asyncio.sleep(0.2)
    assert listener.connections == 0
    print(f"\nrefused URL forms tried: {len(forms)}")


async def test_reasons_say_what_the_address_is(http, dev, listener):
    cases = {
        f"http://0x7f000001:{listener.port}/": "127.0.0.1) is a loopback address",
        "http://169.254.169.254/": "is a link-local address",
        "http://10.1.2.3/": "is a private address",
        f"http://[::ffff:127.0.0.1]:{listener.port}/": "is a loopback address",
    }
    for url, expected in cases.items():
        r = await create(http, dev, x402_body(dev, url))
        assert expected in r.json()["error"]["message"], r.text


async def test_exempted_local_server_is_paid(http, dev, paid_service, app_settings):
    r = await create(http, dev, x402_body(dev, f"{paid_service.url}/weather"))
    assert r.status_code == 202, r.text
    final = await wait_final(http, dev, r.json()["id"])
    assert final["status"] == "confirmed" and final["x402"]["outcome"] == "paid"
    # the paid answer's excerpt is kept: Paygent paid for it
    assert "forecast" in final["x402"]["response_body_excerpt"]


@contextlib.asynccontextmanager
async def redirector(target: str):
    """An allowed (exempted) local server whose every answer is a redirect to `target`."""

    async def go(request):
        return RedirectResponse(target, status_code=302)

    port = free_port()
    app = Starlette(routes=[Route("/{path:path}", go, methods=["GET", "POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_redirect_to_a_refused_address_is_not_followed(http, dev, app_settings, listener):
    target = f"http://127.0.0.1:{listener.port}/secret"
    async with redirector(target) as url:
        with exempt(app_settings, url):
            r = await create(http, dev, x402_body(dev, f"{url}/start"))
            assert r.status_code == 202, r.text
            final = await wait_final(http, dev, r.json()["id"])
            # the 302 is the answer: not followed, nothing paid, and an unpaid answer's body is not stored
            assert final["status"] == "cancelled" and "answered 302" in final["failure_reason"], final
            assert final["x402"]["response_status"] == 302 and not final["x402"]["response_body_excerpt"]
            # even a client that follows redirects checks every hop against the policy
            policy = EgressPolicy(host_port(url))
            async with policy.client() as client:
                assert (await client.get(f"{url}/start")).status_code == 302
                client.follow_redirects = True
                with pytest.raises(EgressRefused, match="loopback"):
                    await client.get(f"{url}/start")
    assert listener.connections == 0


async def test_destination_refused_after_acceptance_ends_refused_before_sending(
    http, dev, app_settings, paid_service, db_engine
):
    """The API accepted the URL; by the time the payment is approved the destination is refused (as a DNS answer
    that moved would be): the workflow ends `refused` naming the URL, the authorization is never sent."""
    wallet = await funded_wallet(http, dev, app_settings, 10)
    one_approver = {"tiers": [{"max_amount": None, "approvals_required": 1, "approvers": ["bob"]}]}
    assert (
        await http.put(f"/v1/wallets/{wallet['id']}/approval-policy", json=one_approver, headers=auth(dev))
    ).status_code == 200
    r = await create(http, dev, x402_body(dev, f"{paid_service.url}/weather", wallet_id=wallet["id"]))
    assert r.status_code == 202, r.text
    pid = r.json()["id"]
    view = await until(lambda: approval(http, dev, pid, "bob"), lambda a: a is not None and a["status"] == "pending")
    entry = host_port(paid_service.url)
    app_settings.egress_allow = ",".join(e for e in app_settings.egress_allow.split(",") if e != entry)
    try:
        ok = await decide(http, dev, "bob", pid, "approve", {"operation_hash": view["operation_hash"]})
        assert ok.status_code == 200, ok.text
        final = await wait_final(http, dev, pid)
    finally:
        app_settings.egress_allow = ",".join(e for e in (app_settings.egress_allow, entry) if e)
    assert final["status"] == "refused", final
    assert "url: 127.0.0.1 is a loopback address" in final["failure_reason"]
    async with db_engine.connect() as conn:
        details = await conn.scalar(sa.select(payments.c.details).where(payments.c.id == uuid.UUID(pid)))
    assert details["signed"] and details["attempts"][-1]["status"] is None  # signed, never delivered
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 0


def test_the_stack_exempts_its_own_paid_service(monkeypatch):
    """`paygent stack up` hands the worker and API an exemption for the local paid service, beside the operator's."""
    from paygent.settings import Settings
    from paygent.stack.apps import app_env
    from paygent.stack.config import StackConfig

    monkeypatch.setenv("PAYGENT_X402_PORT", "18402")
    monkeypatch.setenv("PAYGENT_EGRESS_ALLOW", "10.20.0.0/16")
    env = app_env(StackConfig.load(), database_url="postgresql://x/y", redis_url="redis://x", token_address=None)
    assert env["PAYGENT_EGRESS_ALLOW"] == "10.20.0.0/16,127.0.0.1:18402"
    assert Settings(egress_allow=env["PAYGENT_EGRESS_ALLOW"]).egress_allow  # a valid exemption list


async def test_connection_is_pinned_to_the_checked_address_and_keeps_the_name():
    """The transport dials the address the policy checked (not a fresh lookup) and sends the name as Host."""
    seen: list[tuple[str, str]] = []

    async def echo(request):
        seen.append((request.headers["host"], request.client.host))
        return Response(status_code=204)

    port = free_port()
    app = Starlette(routes=[Route("/", echo)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        policy = EgressPolicy(f"localhost:{port}")
        checked = await policy.check(f"http://localhost:{port}/")
        async with policy.client() as client:
            r = await client.get(f"http://localhost:{port}/")
    finally:
        server.should_exit = True
        await task
    assert str(checked.ip) == "127.0.0.1" and r.status_code == 204
    assert seen == [(f"localhost:{port}", "127.0.0.1")]


async def test_webhook_refused_at_delivery_time_gets_no_connection(http, dev, app_settings, listener):
    """Registered while exempted; by delivery time it is refused (as a moved DNS answer would be): nothing connects,
    the delivery fails for good at once (no retries), and the approval and its payment go on."""
    url = f"http://127.0.0.1:{listener.port}/hook"
    with exempt(app_settings, url):
        r = await http.post("/v1/webhooks", headers=auth(dev), json={"url": url})
    assert r.status_code == 201, r.text
    try:
        pid = (await create(http, dev, payment_body(dev, new_recipient(), "250"))).json()["id"]  # 1 approver
        view = await until(lambda: approval(http, dev, pid, "bob"), lambda a: a is not None)
        ok = await decide(http, dev, "bob", pid, "approve", {"operation_hash": view["operation_hash"]})
        assert ok.status_code == 200, ok.text
        assert (await wait_final(http, dev, pid))["status"] == "confirmed"
    finally:
        await http.delete(f"/v1/webhooks/{r.json()['id']}", headers=auth(dev))
    assert listener.connections == 0
