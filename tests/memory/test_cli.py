"""`paygent memory ...` as a person and an agent run it: real subprocesses speaking HTTP to the real API."""

from __future__ import annotations

import json
import uuid

from tests.authz.test_agents_cli import cli


async def test_put_get_search_partitions_recall_stats_and_grants_from_the_cli(api_url, dev, principals):
    alice, agent = dev["users"]["alice"]["api_key"], principals["agent"]["key"]
    scope = f"cli/{uuid.uuid4().hex[:8]}"
    stored = await cli(
        api_url,
        alice,
        "memory",
        "put",
        "orders/1/status",
        "--value",
        '{"status": "open"}',
        "--scope",
        scope,
        "--partition",
        "day1",
    )
    assert stored.returncode == 0 and "version 1" in stored.stdout, stored
    text = await cli(
        api_url,
        alice,
        "memory",
        "put",
        "note",
        "--value",
        "the supplier is paid on Fridays",
        "--scope",
        scope,
        "--partition",
        "day2",
    )
    assert text.returncode == 0, text
    got = await cli(api_url, alice, "memory", "get", "orders/1/status", "--scope", scope)
    assert got.returncode == 0 and json.loads(got.stdout)["value"] == {"status": "open"}, got
    found = await cli(api_url, alice, "memory", "search", "orders/*/status", "--scope", scope)
    assert found.returncode == 0 and "orders/1/status  v1" in found.stdout, found
    parts = await cli(api_url, alice, "memory", "partitions", "--scope", scope)
    assert "day1" in parts.stdout and "day2" in parts.stdout, parts
    recalled = await cli(api_url, alice, "memory", "recall", "when is the supplier paid", "--scope", scope)
    assert recalled.returncode == 0 and "note: the supplier is paid on Fridays" in recalled.stdout, recalled
    stats = await cli(api_url, alice, "memory", "stats", "--scope", scope)
    assert json.loads(stats.stdout)["keys"] == 2, stats

    refused = await cli(api_url, agent, "memory", "get", "orders/1/status", "--scope", scope)
    assert refused.returncode == 1 and "403" in refused.stderr and "may not read" in refused.stderr, refused
    granted = await cli(api_url, alice, "memory", "grant", scope, "shopper", "read")
    assert granted.returncode == 0 and f"shopper: read on {scope}" in granted.stdout, granted
    read = await cli(api_url, agent, "memory", "get", "orders/1/status", "--scope", scope)
    assert read.returncode == 0, read
    not_admin = await cli(api_url, agent, "memory", "grant", scope, "shopper", "write")
    assert not_admin.returncode == 1 and "403" in not_admin.stderr, not_admin
    cleared = await cli(api_url, alice, "memory", "clear-partition", "day1", "--scope", scope)
    assert "1 items removed" in cleared.stdout, cleared
    gone = await cli(api_url, alice, "memory", "get", "orders/1/status", "--scope", scope)
    assert gone.returncode == 1 and "404" in gone.stderr, gone
