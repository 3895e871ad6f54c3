"""ApprovalWorkflow from Temporal's own tools and to the outside: a `temporal workflow signal` approval counts like
an API one and is audited with channel `temporal`; refused signals are audited; events reach a Redis subscriber
and a local webhook receiver with a correct HMAC signature (a failing receiver is retried, a refusing one is not)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest_asyncio

from activities.approvals import SIGNATURE_HEADER, ConfiguredWebhook, redis_channel, verify_signature
from paygent.crypto import new_master_key, seal_webhook_secret
from paygent.db.schema import webhooks
from paygent.paths import temporal_cli
from paygent.settings import Settings
from tests.egress import host_port
from tests.workflows.approval_harness import actions, approval_id, running_harness

SECRET = "whsec-test"


class Receiver(ThreadingHTTPServer):
    """An in-test webhook endpoint on 127.0.0.1: /ok answers 200, /flaky 503 once per delivery, /gone 410."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server: Receiver = self.server  # type: ignore[assignment]
        server.calls.append((self.path, dict(self.headers), body))
        seen = sum(
            1
            for p, h, _ in server.calls
            if p == self.path and h["X-Paygent-Delivery"] == self.headers["X-Paygent-Delivery"]
        )
        status = {"/ok": 200, "/gone": 410, "/flaky": 503 if seen == 1 else 200}[self.path]
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest_asyncio.fixture(scope="module")
async def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest_asyncio.fixture(scope="module")
async def h(time_skipping_env, db_engine, redis_url, receiver):
    hooks = [
        ConfiguredWebhook(url=receiver.url + "/flaky", secret="cfg-secret"),
        ConfiguredWebhook(url=receiver.url + "/gone", secret="cfg-secret", events=("approval.decided",)),
    ]
    settings = Settings(egress_allow=host_port(receiver.url), master_key=new_master_key())
    async with running_harness(time_skipping_env, db_engine, redis_url, webhooks=hooks, settings=settings) as harness:
        async with db_engine.begin() as conn:
            hook_id = uuid.uuid4()
            await conn.execute(
                webhooks.insert().values(
                    id=hook_id,
                    tenant_id=uuid.UUID(harness.tenant_id),
                    url=receiver.url + "/ok",
                    secret_sealed=seal_webhook_secret(settings.master_key_bytes(), hook_id, SECRET),
                )
            )
        yield harness


async def cli_signal(h, handle, name: str, body: dict | None) -> None:
    """Exactly what an operator types: `temporal workflow signal --name approve --input '{...}'` (no --input for
    a body of None)."""
    target = h.client.service_client.config.target_host
    proc = await asyncio.create_subprocess_exec(
        str(temporal_cli()),
        "workflow",
        "signal",
        "--address",
        target,
        "--namespace",
        h.client.namespace,
        "--workflow-id",
        handle.id,
        "--name",
        name,
        *(["--input", json.dumps(body)] if body is not None else []),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


async def until_audited(h, handle, count: int) -> list[dict]:
    for _ in range(200):  # a signal has no answer: wait for its audit row
        rows = await h.audit(handle)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} audit rows, got {actions(rows)}")


async def test_cli_signal_counts_like_an_update_and_refused_signals_are_audited(h):
    handle = await h.start(5_000)
    op_hash = (await h.state(handle)).operation_hash
    await cli_signal(h, handle, "approve", {"approver": "bob", "operation_hash": op_hash})
    await cli_signal(h, handle, "approve", {"approver": "mallory", "operation_hash": op_hash})
    await cli_signal(h, handle, "approve", {"approver": "dave"})  # no operation hash: refused, audited
    rows = await until_audited(h, handle, 4)
    assert actions(rows)[1:] == [
        ("approval.approve", "bob", "temporal"),
        ("approval.signal_refused", "mallory", "temporal"),
        ("approval.signal_refused", "dave", "temporal"),
    ]
    assert rows[2]["data"]["type"] == "NotAnApprover" and "mallory may not decide" in rows[2]["data"]["reason"]
    assert rows[3]["data"]["type"] == "InvalidRequest" and "operation_hash" in rows[3]["data"]["reason"]
    for _ in range(2):  # a retried signal with the same request id counts once
        await handle.signal("approve", {"approver": "carol", "operation_hash": op_hash, "request_id": "r-1"})
    outcome = await h.outcome(handle)
    assert outcome.status == "approved"
    assert [(a.approver, a.channel) for a in outcome.approvals] == [("bob", "temporal"), ("carol", "temporal")]
    assert [a for a, _, _ in actions(await h.audit(handle))].count("approval.approve") == 2


async def cli_update(h, handle, name: str, body: dict) -> tuple[int, str]:
    """`temporal workflow update execute --name approve --input '{...}'`: the path that replaces decisions by
    Signal (docs/ARCHITECTURE.md, "Decisions by Signal")."""
    proc = await asyncio.create_subprocess_exec(
        str(temporal_cli()),
        "workflow",
        "update",
        "execute",
        "--address",
        h.client.service_client.config.target_host,
        "--namespace",
        h.client.namespace,
        "--workflow-id",
        handle.id,
        "--name",
        name,
        "--input",
        json.dumps(body),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_cli_update_decides_with_an_answer_and_a_refusal_says_why_and_records_nothing(h):
    handle = await h.start(5_000)
    try:
        op_hash = (await h.state(handle)).operation_hash
        code, out = await cli_update(h, handle, "approve", {"approver": "mallory", "operation_hash": op_hash})
        assert code != 0 and "mallory may not decide" in out, out  # the validator's refusal, answered at once
        code, out = await cli_update(h, handle, "approve", {"approver": "bob", "operation_hash": op_hash})
        assert code == 0 and re.search(r'approvals_had"?:\s*1\b', out), out
        rows = await until_audited(h, handle, 2)
        assert actions(rows)[1:] == [("approval.approve", "bob", "temporal")]  # the refusal left no row
    finally:  # end it whatever happened: an open approval would hold the time-skipping server's clock
        await h.decide(handle, "reject", actor="carol")
    assert (await h.outcome(handle)).status == "rejected"


async def test_signals_the_sdk_cannot_decode_are_refused_and_audited(h):
    """An unpaired surrogate in the body (the SDK's converter refuses it, and used to drop the Signal unseen), and
    a Signal with no body at all: each is refused and audited, and the approval goes on."""
    handle = await h.start(5_000)
    await cli_signal(h, handle, "reject", {"actor": "bob", "reason": "\ud800 wedge"})
    await cli_signal(h, handle, "approve", None)
    rows = await until_audited(h, handle, 3)
    assert actions(rows)[1:] == [
        ("approval.signal_refused", "bob", "temporal"),
        ("approval.signal_refused", "unknown", "temporal"),
    ]
    assert rows[1]["data"]["signal"] == "reject" and rows[1]["data"]["type"] == "InvalidRequest"
    assert "reason" in rows[1]["data"]["reason"] and "unpaired surrogates" in rows[1]["data"]["reason"]
    assert rows[1]["data"]["body"] == {"actor": "bob", "reason": "\\ud800 wedge"}  # stored as an escape
    assert rows[2]["data"]["signal"] == "approve" and "no body" in rows[2]["data"]["reason"]
    assert (await h.state(handle)).status == "pending"
    await h.decide(handle, "reject", actor="bob")
    assert (await h.outcome(handle)).status == "rejected"


async def test_events_reach_redis_and_signed_webhooks(h, receiver):
    pubsub = h.redis.pubsub()
    await pubsub.subscribe(redis_channel(h.tenant_id))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    handle = await h.start(500)
    op_hash = (await h.state(handle)).operation_hash
    await h.decide(handle, "approve", actor="dave", operation_hash=op_hash)
    assert (await h.outcome(handle)).status == "approved"

    events = []
    while len(events) < 2:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None, f"only {events} arrived"
        events.append(json.loads(message["data"]))
    await pubsub.aclose()
    assert [(e["type"], e["approval"]["status"]) for e in events] == [
        ("approval.requested", "pending"),
        ("approval.decided", "approved"),
    ]
    assert events[1]["approval"]["approved_by"] == ["dave"]
    assert events[1]["approval"]["approval_id"] == approval_id(handle)

    mine = [
        (p, hd, b) for p, hd, b in receiver.calls if json.loads(b)["approval"]["approval_id"] == approval_id(handle)
    ]
    ok = [(hd, b) for p, hd, b in mine if p == "/ok"]
    assert [hd["X-Paygent-Event"] for hd, _ in ok] == ["approval.requested", "approval.decided"]
    for headers, body in ok:
        assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])
        assert not verify_signature("wrong", body, headers[SIGNATURE_HEADER])
        assert headers[SIGNATURE_HEADER].startswith("sha256=")
    assert json.loads(ok[1][1]) == events[1]  # the same bytes go to Redis and to webhooks
    paths = [p for p, _, _ in mine]
    assert paths.count("/flaky") == 4  # each of 2 events: a 503, then retried by Temporal to a 200
    assert paths.count("/gone") == 1  # 410 is final: not retried, and the approval outcome is unaffected
