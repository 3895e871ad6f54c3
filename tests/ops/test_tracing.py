"""One trace per payment: POST /v1/payments -> StartWorkflow -> RunWorkflow -> every activity, in the
OpenTelemetry SDK's in-memory exporter. The real wiring: `paygent.tracing` gives the provider and the Temporal
interceptor, `workers.main.connect` puts it on the worker's client (the worker takes it from there),
`create_app` instruments FastAPI."""

from __future__ import annotations

import uuid

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from paygent import tracing
from paygent.db.engine import get_engine
from paygent.domain.payment import PAYMENT_WORKFLOW, payment_workflow_id
from tests.api.helpers import create, new_recipient, payment_body, serve_api, wait_final
from workers.main import build_worker, connect
from workflows import payment_types as pt

ACTIVITIES = (pt.ACT_RESERVE_WITH_POLICY, pt.ACT_SIGN_AND_SEND, pt.ACT_AWAIT_RECEIPT, pt.ACT_SETTLE)


async def test_one_trace_from_the_api_through_the_workflow_and_its_activities(app_settings, temporal_env, dev):
    exporter = InMemorySpanExporter()
    provider = tracing.tracer_provider("paygent-test", exporter=exporter)
    settings = app_settings.model_copy(
        update={"task_queue": f"traces-{uuid.uuid4().hex[:6]}", "worker_metrics_address": ""}
    )
    client = await connect(settings, provider)  # the worker's own wiring; the API shares the client here
    async with (
        build_worker(client, settings, get_engine(settings.database_url)),
        serve_api(settings, client, tracer_provider=provider) as http,
    ):
        r = await create(http, dev, payment_body(dev, new_recipient(), amount="1"))
        assert r.status_code == 202, r.text
        payment_id = r.json()["id"]
        assert (await wait_final(http, dev, payment_id))["status"] == "confirmed"
    provider.force_flush()
    spans = exporter.get_finished_spans()

    server = [
        s
        for s in spans
        if s.kind == SpanKind.SERVER
        and s.attributes.get("http.route") == "/v1/payments"
        and s.attributes.get("http.request.method", s.attributes.get("http.method")) == "POST"
    ]
    assert len(server) == 1, [(s.name, dict(s.attributes)) for s in spans if s.kind == SpanKind.SERVER]
    trace_id = server[0].context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    names = {s.name for s in in_trace}
    expected = {
        f"StartWorkflow:{PAYMENT_WORKFLOW}",
        f"RunWorkflow:{PAYMENT_WORKFLOW}",
        *(f"StartActivity:{a}" for a in ACTIVITIES),
        *(f"RunActivity:{a}" for a in ACTIVITIES),
    }
    assert expected <= names, sorted(names)
    start = next(s for s in in_trace if s.name == f"StartWorkflow:{PAYMENT_WORKFLOW}")
    assert start.attributes["temporalWorkflowID"] == payment_workflow_id(payment_id)
    by_id = {s.context.span_id: s for s in in_trace}
    for span in in_trace:  # one tree: every span but the server's has its parent in the trace
        if span is not server[0]:
            assert span.parent is not None and span.parent.span_id in by_id, span.name


def test_tracing_is_off_without_an_otlp_endpoint(monkeypatch):
    for name in tracing.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert tracing.tracer_provider("paygent-api") is None
    assert tracing.temporal_interceptors(None) == []


def test_spans_are_exported_over_otlp_http_when_the_endpoint_is_set(monkeypatch):
    """A real OTLP/HTTP receiver (a local HTTP server) gets the spans as protobuf at /v1/traces."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[tuple[str, str, bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        provider = tracing.tracer_provider("paygent-otlp-test")
        with provider.get_tracer("test").start_as_current_span("payment-step"):
            pass
        assert provider.force_flush(10_000)
        provider.shutdown()
    finally:
        server.shutdown()
    assert [(path, ctype) for path, ctype, _ in received] == [("/v1/traces", "application/x-protobuf")]
    assert b"payment-step" in received[0][2] and b"paygent-otlp-test" in received[0][2]
