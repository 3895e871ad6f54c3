"""The metrics an SLO is built on, scraped after real traffic: the API's /metrics and the worker's endpoint
(the Temporal runtime's Prometheus exporter, with the worker's own `paygent_*` metrics beside the SDK's).

A worker with a metrics runtime on a free port and an API in front of it, on a task queue of their own, take:
a confirmed payment, a refused one, one that waits for an approval (scraped while its reservation is held)
and is approved, MCP tool calls (one refused: a tool the key may not call), a WebSocket connection, a burst of
bad keys (429 `auth_failures`, under a rate-limit prefix of its own so no other test's address is blocked)
and a reconcile run. Then every metric docs/RUNBOOK.md's alert tables name must exist on its endpoint, and
the values say what the traffic did.
"""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest
from eth_account import Account
from prometheus_client.parser import text_string_to_metric_families
from temporalio.service import RPCError

from paygent.db.engine import get_engine
from paygent.netutil import free_port
from paygent.paths import REPO_ROOT
from tests.api.helpers import auth, create, funded_wallet, serve_api, wait_final
from tests.approvals.helpers import approval, decide, tiers, until
from tests.mcp.conftest import data, error_text, mcp_session
from tests.reconcile.conftest import reconcile_once
from tests.ws.helpers import connect as ws_connect
from workers.main import build_worker
from workers.main import connect as worker_client

METRIC = re.compile(r"\b((?:paygent|temporal)_[a-z0-9_]+)")


def runbook_metrics() -> dict[str, set[str]]:
    """The metric names in the runbook's two alert tables: {"api": ..., "worker": ...}."""
    text = (REPO_ROOT / "docs" / "RUNBOOK.md").read_text()
    alerts = text.split("## Alerts worth paging on", 1)[1].split("\n## ", 1)[0]
    api_part, worker_part = alerts.split("\nWorker (", 1)
    return {"api": set(METRIC.findall(api_part)), "worker": set(METRIC.findall(worker_part))}


def samples(text: str) -> dict[str, list]:
    """Family name and sample names (with _total, _bucket... as exposed) -> samples. A family without samples
    (a gauge by status when nothing is open) exists too: its HELP and TYPE are exported."""
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        out.setdefault(family.name, [])
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
            if sample.name == family.name + "_total" and family.name + "_total" not in text:
                out[family.name].append(sample)  # the worker's counters are exposed without _total
    return out


def value(found: dict[str, list], name: str, **labels: str) -> float:
    return sum(s.value for s in found.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


async def test_both_endpoints_export_what_the_runbook_alerts_on(http, dev, app_settings, temporal_env, api_url):
    metrics_address = f"127.0.0.1:{free_port()}"
    settings = app_settings.model_copy(
        update={
            "task_queue": f"metrics-{uuid.uuid4().hex[:8]}",
            "worker_metrics_address": metrics_address,
            "rate_limit_prefix": f"metrics-{uuid.uuid4().hex[:8]}",
            "rate_limit_auth_failures": "5/minute",
        }
    )
    client = await worker_client(settings)
    wallet = await funded_wallet(http, dev, app_settings, 1000)
    for path, body in (
        ("approval-policy", tiers()),
        ("spending-policy", {"per_payment_cap": "500"}),
    ):
        r = await http.put(f"/v1/wallets/{wallet['id']}/{path}", json=body, headers=auth(dev))
        assert r.status_code == 200, r.text

    def pay(amount: str) -> dict:
        return {"wallet_id": wallet["id"], "to": Account.create().address, "amount": amount, "asset": "USDC"}

    async with build_worker(client, settings, get_engine(settings.database_url)), serve_api(settings, client) as api:
        paid = await wait_final(api, dev, (await create(api, dev, pay("1"))).json()["id"])
        refused = await wait_final(api, dev, (await create(api, dev, pay("501"))).json()["id"])
        waiting = (await create(api, dev, pay("150"))).json()
        view = await until(lambda: approval(api, dev, waiting["id"]), lambda a: a is not None)
        held = samples((await api.get("/metrics")).text)  # while its 150 USDC are reserved
        for user in ("bob", "carol"):
            r = await decide(api, dev, user, waiting["id"], "approve", {"operation_hash": view["operation_hash"]})
            assert r.status_code == 200, r.text
        approved = await wait_final(api, dev, waiting["id"])
        api_url_here = str(api.base_url).rstrip("/")
        async with mcp_session(api_url_here, dev["agents"]["shopper"]["api_key"]) as mcp:
            data(await mcp.call_tool("get_balance", {}))
            hidden = await mcp.call_tool("discover_services", {"url": "http://example.invalid/"})
        async with ws_connect(api_url_here, dev["users"]["alice"]["api_key"]):
            open_now = samples((await api.get("/metrics")).text)
        statuses = [
            (await api.get("/v1/payments", headers={"Authorization": "Bearer nope"})).status_code for _ in range(7)
        ]
        await reconcile_once(client, settings.task_queue)
        # what the last two worker alerts watch, provoked: a workflow task that fails (a type no worker has) and
        # a call to Temporal that fails (a workflow that does not exist)
        stray = await client.start_workflow(
            "NoSuchWorkflow", id=f"stray-{uuid.uuid4().hex}", task_queue=settings.task_queue
        )
        with pytest.raises(RPCError):
            await client.get_workflow_handle(f"missing-{uuid.uuid4().hex}").describe()
        await asyncio.sleep(1.5)  # the worker picks the stray task up and fails it
        await stray.terminate("test: a workflow task failure was all it was for")
        api_text = (await api.get("/metrics")).text
        async with httpx.AsyncClient() as plain:
            worker_text = (await plain.get(f"http://{metrics_address}/metrics")).text
    assert (paid["status"], refused["status"], approved["status"]) == ("confirmed", "refused", "confirmed")
    assert "forbidden" in error_text(hidden) and 429 in statuses

    api_found, worker_found = samples(api_text), samples(worker_text)
    named = runbook_metrics()
    assert named["api"] and named["worker"]
    missing = {
        "api": sorted(n for n in named["api"] if n not in api_found),
        "worker": sorted(n for n in named["worker"] if n not in worker_found),
    }
    print(f"\nrunbook names {len(named['api'])} API and {len(named['worker'])} worker metrics; missing: {missing}")
    assert missing == {"api": [], "worker": []}, missing

    # the values say what the traffic did
    assert value(held, "paygent_reserved_amount", asset="USDC") >= 150
    assert value(api_found, "paygent_payments_started_total", kind="transfer") >= 3
    assert value(api_found, "paygent_payments_finished_total", kind="transfer", status="refused") >= 1
    assert value(api_found, "paygent_payments_finished_total", kind="transfer", status="confirmed") >= 2
    assert value(api_found, "paygent_rate_limited_total", cause="auth_failures") >= 1
    assert value(api_found, "paygent_mcp_tool_calls_total", tool="get_balance", outcome="ok") == 1
    assert value(api_found, "paygent_mcp_tool_calls_total", tool="discover_services", outcome="refused") == 1
    assert value(open_now, "paygent_ws_connections_open") == 1 and value(api_found, "paygent_ws_connections_open") == 0
    assert value(api_found, "paygent_ws_connections_total") == 1
    assert "paygent_reconcile_mismatches_open" in api_found and "paygent_reserved_amount" in api_found
    assert value(worker_found, "paygent_payment_latency_seconds_count", kind="transfer", status="confirmed") == 2
    assert value(worker_found, "paygent_payment_latency_seconds_count", kind="transfer", status="refused") == 1
    assert value(worker_found, "paygent_approval_decision_seconds_count", decision="approve") == 2
    assert value(worker_found, "paygent_approval_time_to_quorum_seconds_count") == 1
    assert value(worker_found, "paygent_reconcile_runs", outcome="completed") == 1
    assert value(worker_found, "paygent_activity_outcomes", outcome="completed") > 10
    assert value(worker_found, "temporal_workflow_task_execution_failed") >= 1
    buckets = {float(s.labels["le"]) for s in worker_found["temporal_workflow_task_schedule_to_start_latency_bucket"]}
    assert max(buckets - {float("inf")}) >= 1000  # milliseconds, as the runbook says
