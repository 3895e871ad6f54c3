"""Prometheus metrics: the API's /metrics after real payments and an approval decision, and the worker's
Temporal SDK metrics on a port of its own (the real `workers.main.connect` wiring)."""

from __future__ import annotations

import re
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from paygent.db.engine import get_engine
from paygent.netutil import free_port
from tests.api.helpers import create, new_recipient, payment_body, serve_api, wait_final
from tests.approvals.helpers import approval, decide, pay, tiers, until, wallet_with_policy

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-", re.I)


async def scrape(http) -> dict[tuple[str, tuple], float]:
    r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            assert not any(UUID.search(v) or v.startswith("0x") for v in s.labels.values()), s  # no ids
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_api_metrics_count_requests_payments_approvals_and_reservations(http, dev, app_settings):
    before = await scrape(http)
    r = await create(http, dev, payment_body(dev, new_recipient(), amount="1"))
    assert r.status_code == 202, r.text
    assert (await wait_final(http, dev, r.json()["id"]))["status"] == "confirmed"

    wallet = await wallet_with_policy(http, dev, app_settings, tiers())
    payment_id = await pay(http, dev, "150", wallet_id=wallet["id"])  # awaits 2 approvals: holds a reservation
    # the approvals table is written by the approval workflow's audit activity, just after it starts
    held = await until(lambda: scrape(http), lambda s: value(s, "paygent_approvals_pending") >= 1)
    assert value(held, "paygent_reservations_held") >= 1
    assert value(held, "paygent_reservation_oldest_held_age_seconds") >= 0
    assert value(held, "paygent_payment_oldest_open_age_seconds", status="awaiting_approval") >= 0

    state = await approval(http, dev, payment_id, "bob")
    r = await decide(http, dev, "bob", payment_id, "approve", {"operation_hash": state["operation_hash"]})
    assert r.status_code == 200, r.text
    after = await until(
        lambda: scrape(http),
        lambda s: (
            value(s, "paygent_approval_decisions_total", decision="approve", channel="api")
            > value(before, "paygent_approval_decisions_total", decision="approve", channel="api")
        ),
    )

    assert value(after, "paygent_state_up") == 1
    assert value(after, "paygent_payments", kind="transfer", status="confirmed") > value(
        before, "paygent_payments", kind="transfer", status="confirmed"
    )
    route = dict(route="/v1/payments", method="POST", status="202")
    assert (
        value(after, "paygent_http_requests_total", **route)
        >= value(before, "paygent_http_requests_total", **route) + 2
    )
    latency = dict(route="/v1/payments/{payment_id}", method="GET")
    assert value(after, "paygent_http_request_duration_seconds_count", **latency) >= 1
    assert value(after, "paygent_http_request_duration_seconds_bucket", le="+Inf", **latency) >= 1


async def test_unmatched_paths_share_one_label(http):
    for _ in range(3):
        assert (await http.get(f"/no/such/{uuid.uuid4()}")).status_code == 404
    samples = await scrape(http)
    assert value(samples, "paygent_http_requests_total", route="<unmatched>", method="GET", status="404") >= 3


async def test_worker_serves_temporal_sdk_metrics_on_its_own_port(app_settings, temporal_env, dev):
    from workers.main import build_worker, connect

    port = free_port()
    settings = app_settings.model_copy(
        update={
            "task_queue": f"metrics-{uuid.uuid4().hex[:6]}",
            "worker_metrics_address": f"127.0.0.1:{port}",
            "temporal_address": temporal_env.client.service_client.config.target_host,
        }
    )
    client = await connect(settings)
    async with build_worker(client, settings, get_engine(settings.database_url)), serve_api(settings, client) as http:
        r = await create(http, dev, payment_body(dev, new_recipient(), amount="1"))
        assert r.status_code == 202, r.text
        assert (await wait_final(http, dev, r.json()["id"]))["status"] == "confirmed"
        async with httpx.AsyncClient() as scraper:
            text = (await scraper.get(f"http://127.0.0.1:{port}/metrics")).text
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"temporal_workflow_completed", "temporal_activity_execution_latency"} <= families, sorted(families)
    assert f'task_queue="{settings.task_queue}"' in text
