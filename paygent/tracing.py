"""OpenTelemetry traces: on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (exported over OTLP/HTTP), off otherwise.

One trace follows a payment: the API's server span (FastAPI instrumentation) -> `StartWorkflow:PaymentWorkflow`
(Temporal client interceptor) -> `RunWorkflow` -> `StartActivity:*` -> `RunActivity:*` in the worker (the
same interceptor, which the worker takes from its client). The trace context travels in Temporal headers, so
it survives a worker restart between steps.

The standard OTEL_* variables apply (`OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318`,
`OTEL_EXPORTER_OTLP_HEADERS`; `OTEL_SERVICE_NAME` replaces the service name given here).
"""

from __future__ import annotations

import os

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_configured() -> bool:
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


def tracer_provider(service_name: str, exporter: SpanExporter | None = None) -> TracerProvider | None:
    """A provider exporting to `exporter`, else to OTLP when an endpoint is configured; None: tracing off."""
    if exporter is None:
        if not tracing_configured():
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, timeout from the OTEL_* environment
    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def temporal_interceptors(provider: TracerProvider | None) -> list[Interceptor]:
    """Client interceptors (the worker uses its client's): trace context into and out of Temporal."""
    return [TracingInterceptor(provider.get_tracer("paygent.temporal"))] if provider else []
