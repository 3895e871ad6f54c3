"""Memory in Prometheus (served by the API's /metrics):
- `paygent_memory_items`, `paygent_memory_bytes`, `paygent_memory_expired_not_pruned`, `paygent_memory_texts`:
  read from Postgres at scrape time, summed over tenants (no scope, tenant or key in a label);
- `paygent_memory_operations_total{op, result}`: this process's reads (`hit`/`miss` of the Redis cache, `absent`)
  and writes (`ok`, `conflict`). Per-scope figures are `GET /v1/memory/stats`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("paygent.memory")
OPERATIONS: Counter[tuple[str, str]] = Counter()  # (op, result) -> count, in this process


def count(op: str, result: str) -> None:
    OPERATIONS[(op, result)] += 1


class MemoryCollector(Collector):
    def __init__(self) -> None:
        self.state: dict = {}

    async def refresh(self, engine: AsyncEngine) -> None:
        try:
            async with engine.connect() as conn:
                self.state = await conn.scalar(sa.select(sa.func.paygent_memory_state(type_=JSONB))) or {}
        except Exception:  # the rest of /metrics still answers; these gauges keep their last figures
            log.warning("metrics: could not read the memory state from Postgres", exc_info=True)

    def collect(self) -> Iterable[Metric]:
        out: list[Metric] = []
        for name, field, text in (
            ("paygent_memory_items", "items", "Live memory items (all tenants)"),
            ("paygent_memory_bytes", "bytes", "Bytes of live memory values, as JSON"),
            ("paygent_memory_expired_not_pruned", "expired", "Expired memory items cleanup has not removed yet"),
            ("paygent_memory_texts", "texts", "Texts stored for semantic recall"),
        ):
            gauge = GaugeMetricFamily(name, text)
            gauge.add_metric([], self.state.get(field, 0))
            out.append(gauge)
        ops = CounterMetricFamily(
            "paygent_memory_operations", "Memory reads and writes by this process, by result", labels=["op", "result"]
        )
        for (op, result), n in sorted(OPERATIONS.items()):
            ops.add_metric([op, result], n)
        out.append(ops)
        return out
