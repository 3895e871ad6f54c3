"""A rule that refuses an input says which field and why."""

from __future__ import annotations


class InvalidInput(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
