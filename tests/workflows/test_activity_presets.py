"""No workflow sets an activity's timeouts or retry policy inline: they are presets in workflows/activity_options.py,
spread into the call (`**DATABASE`), so each bound is defined once and docs/ARCHITECTURE.md's sentence stays true."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CALLS = {"execute_activity", "start_activity", "execute_local_activity", "start_local_activity"}
OPTIONS = {"start_to_close_timeout", "schedule_to_close_timeout", "schedule_to_start_timeout", "heartbeat_timeout"}
OPTIONS |= {"retry_policy"}


def inline_options(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CALLS:
            found += [f"{path.name}:{node.lineno} {k.arg}" for k in node.keywords if k.arg in OPTIONS]
    return found


def test_no_workflow_sets_activity_options_inline():
    sources = [p for p in sorted((ROOT / "workflows").glob("*.py")) if p.name != "activity_options.py"]
    assert len(sources) > 10
    assert not [hit for p in sources for hit in inline_options(p)]


def test_the_check_sees_an_inline_timeout(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("workflow.execute_activity('a', start_to_close_timeout=timedelta(seconds=1), **DATABASE)\n")
    assert inline_options(bad) == ["bad.py:1 start_to_close_timeout"]
