"""Admission control for new payments: past PAYGENT_MAX_PAYMENTS_IN_FLIGHT, a clear 429 with Retry-After.

Accepting work the workers cannot run made it worse for everyone: with 1,000 payments accepted at once, workflow
tasks queued past their timeout, a signed transaction waited minutes for its broadcast and stalled its wallet's
later nonces (issue 18). So a new payment is refused, before anything is recorded or started, while the payments
the workers must still drive (`pending`, `signing`, `submitted`: not those parked on an approval or a time-lock,
which cost only a timer) number the limit or more. The caller retries after `Retry-After` seconds with the same
Idempotency-Key; a retry of a payment that was already accepted is safe, and starts nothing twice.

The count comes from Temporal's visibility (this deployment's task queue, by the PaygentStatus search attribute),
read at most once per COUNT_TTL_SECONDS per API process (in the background, while the last read is younger than
STALE_LIMIT_SECONDS) and raised locally by each admission in between, so a burst cannot overshoot the limit by
more than the other API processes admit within one window.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from temporalio.client import Client

from api.errors import ApiError
from paygent import search_attributes as sa
from paygent.domain.payment import PAYMENT_WORKFLOW, PaymentStatus

log = logging.getLogger("paygent.api.admission")

COUNT_TTL_SECONDS = 0.5
STALE_LIMIT_SECONDS = 3.0  # past this the count is read before answering (see Admission.in_flight)
RUNNING_STATUSES = (PaymentStatus.pending, PaymentStatus.signing, PaymentStatus.submitted)


def in_flight_query(task_queue: str) -> str:
    statuses = ", ".join(f"'{s}'" for s in RUNNING_STATUSES)
    return (
        f"WorkflowType = '{PAYMENT_WORKFLOW}' AND ExecutionStatus = 'Running' AND TaskQueue = '{task_queue}' "
        f"AND {sa.STATUS.name} IN ({statuses})"
    )


class Admission:
    def __init__(self, client: Client, task_queue: str, limit: int, retry_after_seconds: float) -> None:
        self._client = client
        self._query = in_flight_query(task_queue)
        self.limit = limit  # 0: no limit
        self.retry_after = max(1, math.ceil(retry_after_seconds))
        self._count = 0
        self._read_at = -math.inf
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task | None = None

    async def in_flight(self, *, fresh: bool = False) -> int:
        """The count, read at most once per COUNT_TTL_SECONDS. Between TTL and STALE_LIMIT_SECONDS the count in
        hand answers while one background read refreshes it, so an admitted request never waits on the
        visibility read (under load, every request arriving during a synchronous read queued behind it: a p95
        cost, issue 18). `fresh` (a refusal about to be answered), or older than STALE_LIMIT_SECONDS, or never
        read: the caller waits for a read younger than COUNT_TTL_SECONDS, and a failed read fails the request
        as before."""
        must_wait = COUNT_TTL_SECONDS if fresh else STALE_LIMIT_SECONDS
        age = time.monotonic() - self._read_at
        if age >= must_wait:
            async with self._lock:  # one visibility read, however many requests arrive meanwhile
                if time.monotonic() - self._read_at >= must_wait:
                    await self._read()
        elif age >= COUNT_TTL_SECONDS and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self._read_in_background())
        return self._count

    async def _read(self) -> None:
        self._count = (await self._client.count_workflows(self._query)).count
        self._read_at = time.monotonic()

    async def _read_in_background(self) -> None:
        try:
            await self._read()
        except Exception:  # the next request past STALE_LIMIT_SECONDS reads again, and fails if this still fails
            log.warning("could not count the payments in flight", exc_info=True)

    async def admit(self) -> None:
        """Raises 429 `too_many_in_flight` (with Retry-After) when the workers already have enough to run."""
        if self.limit <= 0:
            return
        running = await self.in_flight()
        if running >= self.limit:  # never refused on a count older than COUNT_TTL_SECONDS
            running = await self.in_flight(fresh=True)
        if running >= self.limit:
            raise ApiError(
                429,
                "too_many_in_flight",
                f"{running} payments are in flight, the most this deployment runs at once is {self.limit}: "
                f"nothing was recorded; retry after {self.retry_after} s with the same Idempotency-Key",
                headers={"Retry-After": str(self.retry_after)},
            )
        self._count += 1  # until the next read, count what this process let in
