"""Prometheus metrics of the API: `GET /metrics` (no API key; see README.md, "Operations").

Two kinds, one registry per app (so tests can build several apps in one process):
- HTTP: requests by route template, method and status, and latency histograms, counted by an ASGI middleware
  placed outside the body-size limit so its 413s count too. The route label is the template
  (`/v1/payments/{payment_id}`), never the raw path, so ids cannot blow up the number of series.
- Business state, read from Postgres at scrape time so every process (API, worker, CLI, Temporal's own
  Signals) is counted, not only what this API process saw: payments by kind and status (terminal statuses
  are the final ones), payments started and finished as counters (rows are never deleted and a final status
  never changes, so the counts only grow), the age of the oldest open payment per status, approvals pending
  and decisions by channel, reservations held, their amounts by asset and the oldest one's age,
  reconciliation mismatches open (by asset and cause) and ever opened (`paygent_reconcile_mismatches()`,
  migration 0012). Summed over tenants by SECURITY DEFINER functions (row-level security shows the
  application one tenant at a time; `paygent_operational_state()`, migrations 0007 and 0018); no tenant,
  wallet or address in a label.
- Events this process sees: 429s by cause, MCP tool calls by tool and outcome, WebSocket connections and the
  slow readers it dropped.
What only the worker sees (latency from a payment's start to its final status, approval decision latency and
time to quorum, activity outcomes, reconcile runs) the worker exports beside the Temporal SDK's metrics
(workers/metrics.py). docs/RUNBOOK.md lists the alerts; tests/ops/test_metrics_runbook.py checks each metric
it names exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from decimal import Decimal

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

from api.deps import deps
from api.route_match import route_template
from paygent.domain.payment import PAYMENT_TERMINAL
from paygent.memory.metrics import MemoryCollector

log = logging.getLogger("paygent.api.metrics")
router = APIRouter(tags=["operations"])
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class StateSnapshot:
    """What Postgres said at the latest scrape (`paygent_operational_state()`, migration 0007)."""

    def __init__(
        self, state: dict | None = None, mismatches: dict | None = None, decimals: dict[str, int] | None = None
    ) -> None:
        state, mismatches, decimals = state or {}, mismatches or {}, decimals or {}
        self.mismatches_open = {(m["asset"], m["cause"]): m["count"] for m in mismatches.get("open", [])}
        self.mismatches_opened = mismatches.get("opened", 0)
        self.payments = {(p["kind"], p["status"]): p["count"] for p in state.get("payments", [])}
        self.oldest_open: dict[str, float] = {}
        for p in state.get("payments", []):
            if p["status"] not in PAYMENT_TERMINAL:
                age = self.oldest_open.get(p["status"], 0.0)
                self.oldest_open[p["status"]] = max(age, p["oldest_age_seconds"])
        self.approvals_pending = state.get("approvals_pending", 0)
        self.decisions = {
            (d["action"].removeprefix("approval."), d["channel"]): d["count"] for d in state.get("decisions", [])
        }
        self.reservations_held = state.get("reservations_held", 0)
        # token units where the asset's decimals are known (the configured token), else atomic units; a float
        # only here, at exposition (Prometheus values are float64)
        self.reserved = {
            r["asset"]: float(Decimal(r["amount_atomic"]).scaleb(-decimals.get(r["asset"], 0)))
            for r in state.get("reserved", [])
        }
        self.oldest_reservation = state.get("oldest_reservation_age_seconds", 0.0)


class StateCollector(Collector):
    """Yields the latest snapshot; `refresh` (async, before each scrape) takes a new one."""

    def __init__(self) -> None:
        self.snapshot = StateSnapshot()
        self.up = 0

    async def refresh(self, engine: AsyncEngine, decimals: dict[str, int]) -> None:
        try:
            async with engine.connect() as conn:
                state = await conn.scalar(sa.select(sa.func.paygent_operational_state(type_=JSONB)))
                found = await conn.scalar(sa.select(sa.func.paygent_reconcile_mismatches(type_=JSONB)))
        except Exception:  # Postgres down: HTTP metrics still answer; paygent_state_up says the rest is stale
            log.warning("metrics: could not read the state from Postgres", exc_info=True)
            self.up = 0
            return
        self.snapshot, self.up = StateSnapshot(state, found, decimals), 1

    def collect(self) -> Iterable[Metric]:
        s = self.snapshot
        up = GaugeMetricFamily("paygent_state_up", "1 when the latest scrape read the state from Postgres")
        up.add_metric([], self.up)
        pay = GaugeMetricFamily(
            "paygent_payments",
            "Payments by kind and status (final statuses: confirmed, failed, cancelled, refused, reorged_out)",
            labels=["kind", "status"],
        )
        for (kind, status), count in sorted(s.payments.items()):
            pay.add_metric([kind, status], count)
        oldest = GaugeMetricFamily(
            "paygent_payment_oldest_open_age_seconds",
            "Seconds since the least recently updated payment in each open status changed",
            labels=["status"],
        )
        for status, age in sorted(s.oldest_open.items()):
            oldest.add_metric([status], age)
        pending = GaugeMetricFamily("paygent_approvals_pending", "Approvals waiting for a decision")
        pending.add_metric([], s.approvals_pending)
        decided = CounterMetricFamily(
            "paygent_approval_decisions",
            "Approval decisions recorded (audit log), by decision and channel (api, cli, temporal)",
            labels=["decision", "channel"],
        )
        for (decision, channel), count in sorted(s.decisions.items()):
            decided.add_metric([decision, channel], count)
        held = GaugeMetricFamily(
            "paygent_reservations_held", "Spending reservations held (not yet committed or released)"
        )
        held.add_metric([], s.reservations_held)
        held_age = GaugeMetricFamily(
            "paygent_reservation_oldest_held_age_seconds", "Age of the oldest reservation still held (0 when none)"
        )
        held_age.add_metric([], s.oldest_reservation)
        mismatched = GaugeMetricFamily(
            "paygent_reconcile_mismatches_open",
            "Differences between ledger and chain the reconciler could not explain, open now, by asset and cause",
            labels=["asset", "cause"],
        )
        for (asset, cause), count in sorted(s.mismatches_open.items()):
            mismatched.add_metric([asset, cause], count)
        opened = CounterMetricFamily(
            "paygent_reconcile_mismatches_opened", "Reconciliation mismatches ever opened (each once)"
        )
        opened.add_metric([], s.mismatches_opened)
        started = CounterMetricFamily(
            "paygent_payments_started", "Payments recorded (every door: API, MCP, agent runs), by kind", labels=["kind"]
        )
        finished = CounterMetricFamily(
            "paygent_payments_finished",
            "Payments that reached a final status, by kind and status (confirmed, failed, cancelled, refused, reorged_out)",
            labels=["kind", "status"],
        )
        by_kind: dict[str, int] = {}
        for (kind, status), count in sorted(s.payments.items()):
            by_kind[kind] = by_kind.get(kind, 0) + count
            if status in PAYMENT_TERMINAL:
                finished.add_metric([kind, status], count)
        for kind, count in sorted(by_kind.items()):
            started.add_metric([kind], count)
        reserved = GaugeMetricFamily(
            "paygent_reserved_amount",
            "Amount held by reservations, by asset (token units for the configured token)",
            labels=["asset"],
        )
        for asset, amount in sorted(s.reserved.items()):
            reserved.add_metric([asset], amount)
        return [up, pay, oldest, pending, decided, held, held_age, mismatched, opened, started, finished, reserved]


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "paygent_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "paygent_http_request_duration_seconds",
            "HTTP request latency (to the end of the answer; event streams count their whole life)",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.mcp_calls = Counter(
            "paygent_mcp_tool_calls",
            "MCP tool calls by tool and outcome (ok; error: a tool error such as a refused payment; refused: the "
            "key may not call the tool)",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self.mcp_latency = Histogram(
            "paygent_mcp_tool_call_duration_seconds",
            "MCP tool call latency (a paying tool waits for the payment to move, up to its timeout)",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "paygent_rate_limited",
            "429 answers by cause (per_key, per_address, auth_failures: an address that failed to authenticate)",
            ["cause"],
            registry=self.registry,
        )
        self.ws_open = Gauge(
            "paygent_ws_connections_open", "WebSocket connections open now (/v1/ws)", registry=self.registry
        )
        self.ws_opened = Counter("paygent_ws_connections", "WebSocket connections accepted", registry=self.registry)
        self.ws_dropped = Counter(
            "paygent_ws_slow_readers_dropped",
            "WebSocket connections closed because the client did not read its events in time (4408)",
            registry=self.registry,
        )
        self.state = StateCollector()
        self.registry.register(self.state)
        self.memory = MemoryCollector()
        self.registry.register(self.memory)

    def mcp_tool_call(self, tool: str, outcome: str, seconds: float) -> None:
        self.mcp_calls.labels(tool, outcome).inc()
        self.mcp_latency.labels(tool).observe(seconds)


class RequestMetrics:
    """ASGI middleware: one count and one latency observation per HTTP request."""

    def __init__(self, app, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            template, method = route_template(scope["app"], scope), scope["method"]
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - started)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus scrape endpoint (no API key; aggregated over tenants, no identifiers in labels)."""
    m: ApiMetrics = request.app.state.metrics
    d = deps(request)
    assets = d.settings.asset_registry().on_chain(d.settings.chain_id)
    await m.state.refresh(
        d.engine, {d.settings.token_symbol: d.settings.token_decimals} | {a.symbol: a.decimals for a in assets}
    )
    await m.memory.refresh(d.engine)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
