"""Audit actions and subject types are named in one module (paygent/domain/audit_names.py) with one spelling rule,
and the code writes them by name: a string typed at an `append_audit` call would be a new spelling nobody checked."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from paygent.domain.audit_names import LEGACY_SPELLINGS, AuditAction, AuditSubject

ROOT = Path(__file__).resolve().parents[2]
RULE = re.compile(r"^(?P<subject>[a-z0-9_]+)\.[a-z0-9_]+$")


def follows_rule(action: AuditAction) -> bool:
    m = RULE.match(action.value)
    return bool(m) and m["subject"] in set(AuditSubject) and action.name == action.value.replace(".", "_")


def test_every_action_follows_the_rule_but_the_legacy_ones_which_keep_their_stored_spelling():
    assert {a for a in AuditAction if not follows_rule(a)} == LEGACY_SPELLINGS
    for action in LEGACY_SPELLINGS:  # named by the rule all the same: <subject>_<what happened>
        assert any(action.name.startswith(f"{s.value}_") for s in AuditSubject), action.name


def literal_audit_names() -> list[str]:
    found = []
    for package in ("api", "activities", "workers", "workflows", "paygent"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                name = getattr(node, "func", None)
                if not isinstance(node, ast.Call) or getattr(name, "id", getattr(name, "attr", None)) != "append_audit":
                    continue
                for kw in node.keywords:
                    values = [kw.value.body, kw.value.orelse] if isinstance(kw.value, ast.IfExp) else [kw.value]
                    for v in values:
                        if kw.arg in ("action", "subject_type") and isinstance(v, ast.Constant):
                            found.append(f"{path.relative_to(ROOT)}:{v.lineno} {kw.arg}={v.value!r}")
    return found


def test_the_code_writes_audit_names_by_name():
    assert not literal_audit_names()
