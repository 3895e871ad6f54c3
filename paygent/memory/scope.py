"""Scopes, keys and key patterns: pure rules, no I/O.

A scope is a tuple of segments, each `[\\w.\\-]{1,64}`, written `a/b` in query strings. A scope whose first
segment is `private` is the caller's own (`private/notes` is the caller's scope `notes`; the default scope is
`private/default`, where today's agent memory lives). Every other scope is shared by the tenant and needs a
grant (paygent.memory.access).

Key patterns: `*` matches within one `/`-separated part of a key, `**` across parts, `?` one character that is
not `/`. A pattern becomes a LIKE prefix (with `%`, `_` and `\\` escaped, so it can use the index) and an
anchored regular expression in which every other character stands for itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from paygent.domain.errors import InvalidInput

SEGMENT = re.compile(r"^[\w.\-]{1,64}$", re.ASCII)
KEY = re.compile(r"^[\w.\-:/]{1,200}$", re.ASCII)
PATTERN = re.compile(r"^[\w.\-:/*?]{1,200}$", re.ASCII)
PARTITION = re.compile(r"^[\w.\-:]{0,64}$", re.ASCII)
PRIVATE = "private"
MAX_DEPTH = 8


@dataclass(frozen=True)
class Scope:
    segments: tuple[str, ...]
    private: bool

    @property
    def path(self) -> str:
        """How the scope is stored: its segments joined by `/` (without the `private` marker)."""
        return "/".join(self.segments)

    @property
    def written(self) -> str:
        """How a caller writes it."""
        return "/".join(((PRIVATE,) if self.private else ()) + self.segments)


def parse_scope(text: str | list[str] | None, field: str = "scope") -> Scope:
    """A scope from `a/b` or `["a", "b"]`; None means the caller's private default scope."""
    if text is None or text == "" or text == []:
        return Scope(("default",), private=True)
    parts = text.split("/") if isinstance(text, str) else list(text)
    if not all(isinstance(p, str) and SEGMENT.match(p) for p in parts):
        raise InvalidInput(field, "each segment of a scope must be 1-64 characters of letters, digits, '_', '.', '-'")
    if len(parts) > MAX_DEPTH:
        raise InvalidInput(field, f"a scope has at most {MAX_DEPTH} segments")
    if parts[0] == PRIVATE:
        rest = tuple(parts[1:]) or ("default",)
        return Scope(rest, private=True)
    return Scope(tuple(parts), private=False)


def check_key(key: str, field: str = "key") -> str:
    if not KEY.match(key):
        raise InvalidInput(field, "a key is 1-200 characters of letters, digits, '_', '.', '-', ':', '/'")
    return key


def check_partition(partition: str, field: str = "partition") -> str:
    if not PARTITION.match(partition):
        raise InvalidInput(field, "a partition is 0-64 characters of letters, digits, '_', '.', '-', ':'")
    return partition


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class KeyPattern:
    like_prefix: str  # LIKE operand, already escaped, ending in %
    regex: str  # a Postgres (and Python) regular expression, anchored


def compile_pattern(pattern: str, field: str = "pattern") -> KeyPattern:
    if not PATTERN.match(pattern):
        raise InvalidInput(field, "a pattern is 1-200 characters of key characters and the wildcards '*', '**', '?'")
    literal = re.split(r"[*?]", pattern, maxsplit=1)[0]
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            ch = pattern[i]
            out.append(ch if ch.isalnum() else "\\" + ch)
            i += 1
    return KeyPattern(like_prefix=escape_like(literal) + "%", regex="^" + "".join(out) + "$")
