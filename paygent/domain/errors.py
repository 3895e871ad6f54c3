"""A rule that refuses an input says which field and why."""

from __future__ import annotations


class InvalidInput(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# ApplicationError type of an activity whose failure is the data itself (the database refused a value): the same
# input fails the same way on every attempt, so it is never retried and every workflow turns it into a clean end.
DATA_REFUSED = "DataRefused"
