"""README.md and docs/ name only what exists: repository paths, `paygent` verbs and make targets.

A doc that names a file that moved, a verb that was renamed or a make target that went sends the reader to
nothing; this walk finds it when the change lands, not when someone follows the doc.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path
from typing import Any

import typer

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Top-level directories of the repository: a path that starts with one of them is a path into the repository
# (`fleet/pricing` or `private/default` are memory scopes, `.paygent/` is runtime state).
TOP = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")} - {"node_modules"} | {".ci"}
TOP_FILES = {"Makefile", "pyproject.toml", "Dockerfile", "docker-compose.yml", "alembic.ini", "package.json"}
FILE_NAME = re.compile(r"^[\w-]+\.(py|md|toml|vy|yml|yaml|ini|json)$")
SOURCE_NAME = re.compile(r"^[\w-]+\.(py|vy)$")
SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
# A repository path in running text (outside backticks): only with a file extension, so prose stays prose.
TOPS = "|".join(re.escape(t) for t in sorted(TOP))
PROSE_PATH = re.compile(rf"(?<![\w/.-])((?:{TOPS})/[\w/.*-]*\.(?:py|md|toml|vy|json|yml))\b")
PAYGENT = re.compile(r"(?:^|[\s;$(`])paygent((?:\s+[a-z][\w|-]*)+)")
MAKE = re.compile(r"(?:^|[\s;`])make((?:\s+\S+)+)")


def _texts() -> list[tuple[str, str, str]]:
    """(doc, backticked text, fenced code) per doc."""
    out = []
    for doc in DOCS:
        text = doc.read_text()
        fenced = "\n".join(m.group(0) for m in FENCE.finditer(text))
        prose = FENCE.sub("", text)
        out.append((doc.name, prose, fenced))
    return out


def _exists(token: str) -> bool:
    token = token.split("::")[0].rstrip(".,;:)")
    pattern = re.sub(r"<[^>]*>|\{[^}]*\}", "*", token)
    if "*" in pattern:
        return any(ROOT.glob(pattern.rstrip("/")))
    return (ROOT / token).exists()


def _layout_tokens(fenced: str) -> set[str]:
    """The layout maps in fenced blocks: `api/  FastAPI...` at the margin, `  db/` or `  cli.py` under `paygent/`."""
    tokens, parent = set(), ""
    for line in fenced.splitlines():
        m = re.match(r"^( {0,4})([\w.-]+(?:/[\w.-]*)*)(?:\s|$)", line)
        if not m or not (m.group(2).endswith("/") or FILE_NAME.match(m.group(2).split("/")[-1])):
            continue
        if not m.group(1):
            if m.group(2).split("/")[0] not in TOP and m.group(2) not in TOP_FILES:
                parent = ""
                continue
            parent = m.group(2) if m.group(2).endswith("/") else ""
            tokens.add(m.group(2))
        elif parent:
            tokens.add(parent + m.group(2))
    return tokens


def _path_tokens(prose: str) -> set[str]:
    tokens = set()
    for span in SPAN.findall(prose):
        for token in span.split():
            token = token.strip("'\"(),;").split("::")[0]
            first = token.split("/")[0]
            if ("/" in token and first in TOP) or token in TOP_FILES:
                tokens.add(token)
    tokens.update(PROSE_PATH.findall(prose))
    return tokens


def test_every_repository_path_the_docs_name_exists():
    missing = []
    for doc, prose, fenced in _texts():
        tokens = _path_tokens(prose) | _layout_tokens(fenced) | set(PROSE_PATH.findall(fenced))
        missing += [f"{doc}: {t}" for t in sorted(tokens) if not _exists(t)]
        for span in SPAN.findall(prose):
            if SOURCE_NAME.match(span):  # a module named by itself (`approval_state.py`) exists somewhere
                if not any(ROOT.glob(f"[!.n]*/**/{span}")):
                    missing.append(f"{doc}: {span}")
    assert not missing, "\n".join(missing)


def _cli() -> Any:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module = pyproject["project"]["scripts"]["paygent"].split(":")[0]
    return typer.main.get_command(importlib.import_module(module).app)


def _commands(prose: str, fenced: str) -> set[str]:
    found = set()
    for span in SPAN.findall(prose):
        found.update(m.group(1).strip() for m in PAYGENT.finditer(span))
    for line in fenced.splitlines():
        found.update(m.group(1).strip() for m in PAYGENT.finditer(line.split("#")[0]))
    return found


def _resolves(cli: Any, words: list[str]) -> bool:
    if not words:
        return True
    commands = getattr(cli, "commands", None)  # a group (typer ships its own click: no isinstance)
    if commands is None:
        return True  # the rest are the command's arguments
    sub = commands.get(words[0])
    return sub is not None and _resolves(sub, words[1:])


def test_every_paygent_verb_the_docs_name_resolves():
    cli = _cli()
    unknown = []
    for doc, prose, fenced in _texts():
        for command in sorted(_commands(prose, fenced)):
            words = command.split()
            alternatives = words[1].split("|") if len(words) > 1 and "|" in words[1] else [None]
            for alt in alternatives:
                path = words[:1] + ([alt] if alt else words[1:])
                if not _resolves(cli, path):
                    unknown.append(f"{doc}: paygent {command}")
    assert not unknown, "\n".join(unknown)


def _make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+)\s*:(?!=)", (ROOT / "Makefile").read_text(), re.M))


def test_every_make_target_the_docs_name_exists():
    targets = _make_targets()
    unknown = []
    for doc, prose, fenced in _texts():
        lines = [m.group(1) for span in SPAN.findall(prose) for m in MAKE.finditer(span)]
        lines += [m.group(1) for line in fenced.splitlines() for m in MAKE.finditer(line.split("#")[0])]
        for args in lines:
            words = args.split()
            while words and (words[0].startswith("-") or "=" in words[0]):
                words = words[2:] if words[0] in ("-o", "-C", "-f") else words[1:]
            if words and words[0] not in targets:
                unknown.append(f"{doc}: make {args.strip()}")
    assert not unknown, "\n".join(unknown)


def test_the_walk_finds_what_it_looks_for():
    """The patterns are not vacuous: they find README's own examples."""
    (_, prose, fenced) = _texts()[0]
    assert "paygent/egress.py" in _path_tokens(prose)
    assert "workflows/" in _layout_tokens(fenced)
    assert "stack up" in _commands(prose, fenced)
    assert {"up", "test", "lint"} <= _make_targets()
    assert not _exists("paygent/no_such_module.py")
    assert not _resolves(_cli(), ["stack", "no-such-verb"])
