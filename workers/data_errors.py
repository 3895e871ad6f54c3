"""Deterministic data errors end an activity for good instead of being retried forever.

When the database refuses a value (NUL in text, `\\u0000` in jsonb, a value out of range...), every retry of the
activity fails the same way; Temporal's default policy would retry it without end and wedge the workflow that
waits on it. This worker interceptor turns such a failure into a non-retryable `ApplicationError` of type
`DataRefused` (paygent.domain.errors.ErrorType.data_refused), which the workflows turn into a clean, audited end.
One interceptor rather than a `try` in every activity: no activity can forget it.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import sqlalchemy.exc
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from paygent.domain.errors import ErrorType


def data_error(exc: BaseException) -> BaseException | None:
    """The driver's data error behind `exc` (SQLAlchemy wraps asyncpg's in a generic DBAPIError), or None."""
    if isinstance(exc, (asyncpg.exceptions.DataError, UnicodeEncodeError)):
        return exc
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        orig = exc.orig
        for candidate in (orig, getattr(orig, "__cause__", None)):
            if isinstance(candidate, asyncpg.exceptions.DataError):
                return candidate
        if isinstance(exc, sqlalchemy.exc.DataError):
            return orig or exc
    return None


class _DataErrorsAreFinal(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except (sqlalchemy.exc.DBAPIError, asyncpg.exceptions.DataError, UnicodeEncodeError) as exc:
            cause = data_error(exc)
            if cause is None:
                raise  # not the data's fault (connection lost, deadlock...): Temporal retries it
            # the driver's message only (the statement and its parameters may hold the refused value)
            message = str(cause).splitlines()[0][:300] if str(cause) else ""
            raise ApplicationError(
                f"the database refused a value: {type(cause).__name__}: {message}",
                type=ErrorType.data_refused,
                non_retryable=True,
            ) from None


class DataErrorInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _DataErrorsAreFinal(super().intercept_activity(next))
