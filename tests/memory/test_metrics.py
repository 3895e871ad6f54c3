"""/metrics exports memory figures that follow the rows and this process's reads and writes."""

from __future__ import annotations

import re

from tests.memory.helpers import get, private, put


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


async def test_metrics_follow_memory_rows_and_operations(http, dev):
    alice = dev["users"]["alice"]["api_key"]
    before = (await http.get("/metrics")).text
    scope = private()
    await put(http, alice, scope, "a", "x" * 10)
    await put(http, alice, scope, "a", "y", if_version=7)  # a conflict
    await get(http, alice, scope, "a")
    await get(http, alice, scope, "a")
    await get(http, alice, scope, "missing")
    after = (await http.get("/metrics")).text
    assert _value(after, "paygent_memory_items") == _value(before, "paygent_memory_items") + 1
    assert _value(after, "paygent_memory_bytes") == _value(before, "paygent_memory_bytes") + 12

    def ops(text: str, op: str, result: str) -> float:
        match = re.search(
            rf'^paygent_memory_operations_total\{{op="{op}",result="{result}"\}} ([0-9.e+]+)$', text, re.M
        )
        return float(match.group(1)) if match else 0.0

    for op, result, grew in (
        ("write", "ok", 1),
        ("write", "conflict", 1),
        ("read", "miss", 1),
        ("read", "hit", 1),
        ("read", "absent", 1),
    ):
        assert ops(after, op, result) - ops(before, op, result) == grew, (op, result)
