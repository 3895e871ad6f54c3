"""Webhooks registered through the API receive signed approval events for a real payment."""

from __future__ import annotations

import asyncio
import contextlib
import json

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activities.approvals import SIGNATURE_HEADER, verify_signature
from paygent.netutil import free_port
from tests.api.helpers import auth, create, new_recipient, payment_body, wait_final
from tests.egress import exempt


async def test_registered_webhook_gets_signed_approval_events(http, dev, app_settings):
    received: list[tuple[bytes, dict]] = []

    async def hook(request: Request) -> Response:
        received.append((await request.body(), dict(request.headers)))
        return Response(status_code=204)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/hook", hook, methods=["POST"])]), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    task = asyncio.create_task(server.serve())
    local = contextlib.ExitStack()
    local.enter_context(exempt(app_settings, f"http://127.0.0.1:{port}"))  # loopback is refused otherwise
    try:
        r = await http.post("/v1/webhooks", headers=auth(dev), json={"url": f"http://127.0.0.1:{port}/hook"})
        assert r.status_code == 201, r.text
        hook_id, secret = r.json()["id"], r.json()["secret"]
        assert (
            await http.post("/v1/webhooks", headers=auth(dev, "bob"), json={"url": "http://x/y"})
        ).status_code == 403
        listed = (await http.get("/v1/webhooks", headers=auth(dev))).json()["items"]
        assert any(w["id"] == hook_id for w in listed) and all("secret" not in w for w in listed)

        pid = (await create(http, dev, payment_body(dev, new_recipient(), "250"))).json()["id"]  # 1 approver
        for _ in range(200):
            if any(json.loads(b).get("type") == "approval.requested" for b, _ in received):
                break
            await asyncio.sleep(0.05)
        state = (await http.get(f"/v1/approvals/{pid}", headers=auth(dev, "bob"))).json()
        ok = await http.post(
            f"/v1/approvals/{pid}/approve", headers=auth(dev, "bob"), json={"operation_hash": state["operation_hash"]}
        )
        assert ok.status_code == 200, ok.text
        assert (await wait_final(http, dev, pid))["status"] == "confirmed"
        for _ in range(200):
            if any(json.loads(b).get("type") == "approval.decided" for b, _ in received):
                break
            await asyncio.sleep(0.05)
    finally:
        await http.delete(f"/v1/webhooks/{hook_id}", headers=auth(dev))
        local.close()
        server.should_exit = True
        await task
    mine = [(json.loads(b), b, h) for b, h in received if json.loads(b)["approval"]["approval_id"] == pid]
    assert [m[0]["type"] for m in mine] == ["approval.requested", "approval.decided"]
    for _, body, headers in mine:
        assert verify_signature(secret, body, headers[SIGNATURE_HEADER.lower()])
        assert not verify_signature("wrong-secret", body, headers[SIGNATURE_HEADER.lower()])
