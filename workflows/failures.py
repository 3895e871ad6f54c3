"""What a failure says to a person (a payment's `failure_reason`) and to a model (an agent run's tool error)."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

from paygent.domain.errors import ErrorType


class StepFailed(ApplicationError):
    """A payment step's activity failed, whether it ran as a regular or a local activity: one shape for every
    caller. Its cause is the activity's own error (an ApplicationError, a timeout); `final` when no retry can help.

    A cancellation is never wrapped: it stays the SDK's, so the workflow still ends cancelled. Escaping the
    workflow, it fails it as the ActivityError it replaces did (type `StepFailed`, the cause kept)."""

    def __init__(self, activity: str, *, final: bool) -> None:
        super().__init__(f"activity {activity} failed", type=ErrorType.step_failed, non_retryable=final)
        self.activity = activity
        self.final = final


def _wraps(err: BaseException) -> bool:
    """A wrapper whose cause says more: an activity's or a child's failure, or a step's (also as it comes back
    from a child payment, deserialized as a plain ApplicationError of type StepFailed)."""
    if isinstance(err, (ActivityError, ChildWorkflowError)):
        return True
    return isinstance(err, ApplicationError) and err.type == ErrorType.step_failed


def failure_reason(err: BaseException) -> str:
    """The innermost cause (a failed approval's failed activity, say), with its error type: "Activity task failed"
    alone tells nobody anything."""
    cause: BaseException = err
    while _wraps(cause) and getattr(cause, "cause", None) is not None:
        cause = cause.cause  # type: ignore[attr-defined]
    message = getattr(cause, "message", None) or str(cause)
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {message}"
    return message
