"""What a failure says to a person (a payment's `failure_reason`) and to a model (an agent run's tool error)."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError


def failure_reason(err: BaseException) -> str:
    """The innermost cause (a failed approval's failed activity, say), with its error type: "Activity task failed"
    alone tells nobody anything."""
    cause: BaseException = err
    while isinstance(cause, (ActivityError, ChildWorkflowError)) and cause.cause is not None:
        cause = cause.cause
    message = getattr(cause, "message", None) or str(cause)
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {message}"
    return message
