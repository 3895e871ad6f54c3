"""Workflow code stays deterministic: a static check of every module a workflow runs, beside the replay tests.

The worker runs workflows without the SDK's sandbox by default (PAYGENT_WORKFLOW_SANDBOX, workers/main.py: the
sandbox re-executed the workflow modules for every new run, half of the worker's workflow CPU). Nothing then
stops a workflow at run time from reading the clock or the network, so this test refuses it in the source:
no clock, randomness, environment, threads, files or network clients, no activity or database code, and
no `asyncio.sleep` (a durable wait is `workflow.sleep` or `workflow.wait_condition` with a timeout).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from workers.main import PURE_WORKFLOW_MODULES

ROOT = Path(__file__).resolve().parents[2]
# Client-side helpers that live beside the workflows but run in the API (never inside a workflow).
CLIENT_SIDE = {"workflows/approval_client.py", "workflows/payment_client.py"}
PURE_STDLIB = {"urllib.parse"}  # string functions only: no I/O behind them
FORBIDDEN_MODULES = {
    "time",
    "random",
    "secrets",
    "os",
    "socket",
    "threading",
    "subprocess",
    "multiprocessing",
    "urllib",
    "http",
    "httpx",
    "requests",
    "aiohttp",
    "sqlalchemy",
    "asyncpg",
    "redis",
    "web3",
    "activities",
    "paygent.db",
    "paygent.chain",
    "paygent.settings",
    "paygent.egress",
}
FORBIDDEN_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("uuid", "uuid1"),
    ("uuid", "uuid4"),
    ("asyncio", "sleep"),
}
FORBIDDEN_NAMES = {"open", "input", "print", "uuid4", "uuid1"}


def workflow_sources() -> list[Path]:
    """workflows/ and the pure modules workflows import (PURE_WORKFLOW_MODULES), as files."""
    files = {p for p in (ROOT / "workflows").glob("*.py") if str(p.relative_to(ROOT)) not in CLIENT_SIDE}
    for module in PURE_WORKFLOW_MODULES:
        path = ROOT / module.replace(".", "/")
        files |= set(path.glob("*.py")) if path.is_dir() else {path.with_suffix(".py")}
    return sorted(files)


def violations(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            names = []
        for name in names:
            if name not in PURE_STDLIB and any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES):
                found.append(f"{path.name}:{node.lineno} imports {name}")
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                if (func.value.id, func.attr) in FORBIDDEN_CALLS:
                    found.append(f"{path.name}:{node.lineno} calls {func.value.id}.{func.attr}")
            elif isinstance(func, ast.Name) and func.id in FORBIDDEN_NAMES:
                found.append(f"{path.name}:{node.lineno} calls {func.id}")
    return found


def test_the_lint_sees_the_workflow_modules():
    names = {p.name for p in workflow_sources()}
    assert {"payment.py", "approval.py", "agent_run.py", "reconcile.py", "payment_types.py"} <= names
    assert "approval_client.py" not in names


@pytest.mark.parametrize("path", workflow_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_workflow_code_reads_no_clock_randomness_or_io(path):
    assert violations(path) == []


def test_the_lint_refuses_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import time\nfrom datetime import datetime\nimport uuid\nfrom sqlalchemy import select\n"
        "import asyncio\n\nasync def f():\n    datetime.now()\n    uuid.uuid4()\n    await asyncio.sleep(1)\n"
        "    open('x')\n"
    )
    assert set(violations(bad)) == {
        "bad.py:1 imports time",
        "bad.py:4 imports sqlalchemy",
        "bad.py:8 calls datetime.now",
        "bad.py:9 calls uuid.uuid4",
        "bad.py:10 calls asyncio.sleep",
        "bad.py:11 calls open",
    }
