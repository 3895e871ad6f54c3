"""A wait with a deadline, in the shape of temporalio/samples-python's `updatable_timer`: wait until something
happens, the deadline moves, or it passes. One timer per deadline; a deadline that moves wakes the wait, and the
caller waits again on the new one (a fresh timer), so a moved deadline never leaves a stale timer to fire.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from temporalio import workflow


async def wait_until(
    deadline: Callable[[], datetime], done: Callable[[], bool], *, summary: Callable[[datetime], str]
) -> bool:
    """Wait until `done()`, a new `deadline()`, or the deadline; True when the deadline passed (no timer is
    started for one already past). A fixed deadline is `lambda: at`."""
    at = deadline()
    remaining = (at - workflow.now()).total_seconds()
    if remaining <= 0:
        return True
    try:
        await workflow.wait_condition(
            lambda: done() or deadline() != at, timeout=remaining, timeout_summary=summary(at)
        )
    except TimeoutError:
        return True
    return False
