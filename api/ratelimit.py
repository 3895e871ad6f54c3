"""Rate limits in Redis, with the `limits` library: failed authentications per client address (hard), and
requests per API key and per address (generous). Limits are settings (`PAYGENT_RATE_LIMIT_*`, in the
`limits` notation such as "5/minute").

A refusal is 429 with `Retry-After`. Refusals are audited at a sampled rate (at most one audit row per
bucket and minute), never per request. When Redis is down the API keeps serving: limits fail open, a warning
is logged once a minute, and `/readyz` reports Redis as down (`degraded`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import HTTPConnection

from api.errors import ApiError
from paygent.db.audit import append_audit
from paygent.domain.channels import Channel
from paygent.settings import Settings

log = logging.getLogger("paygent.api.ratelimit")


@dataclass
class RateLimits:
    limiter: SlidingWindowCounterRateLimiter
    storage: RedisStorage
    auth_failures: RateLimitItem
    per_key: RateLimitItem
    per_address: RateLimitItem
    _warned_at: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        uri = settings.redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
        storage = RedisStorage(
            uri,
            implementation="redispy",
            key_prefix=settings.rate_limit_prefix,
            wrap_exceptions=True,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
        )
        return cls(
            limiter=SlidingWindowCounterRateLimiter(storage),
            storage=storage,
            auth_failures=parse(settings.rate_limit_auth_failures),
            per_key=parse(settings.rate_limit_per_key),
            per_address=parse(settings.rate_limit_per_address),
        )

    async def _allowed(self, item: RateLimitItem, *ids: str, hit: bool) -> tuple[bool, int]:
        """(allowed, seconds until a retry can succeed); fails open when Redis does not answer."""
        try:
            ok = await (self.limiter.hit(item, *ids) if hit else self.limiter.test(item, *ids))
            if ok:
                return True, 0
            stats = await self.limiter.get_window_stats(item, *ids)
            return False, max(1, math.ceil(stats.reset_time - time.time()))
        except Exception:  # Redis down: serve anyway, and say so (rarely)
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("rate limits unavailable (Redis does not answer); serving without them", exc_info=True)
            return True, 0

    async def check_address_not_blocked(self, engine: AsyncEngine, address: str) -> None:
        """Before authenticating: an address that failed too often recently is refused outright."""
        ok, retry = await self._allowed(self.auth_failures, "authfail", address, hit=False)
        if not ok:
            await self._refuse(
                engine,
                f"authfail:{address}",
                retry,
                actor=f"anonymous@{address}",
                why="too many failed authentications from this address",
            )

    async def record_auth_failure(self, address: str) -> None:
        await self._allowed(self.auth_failures, "authfail", address, hit=True)

    async def check_request(
        self, engine: AsyncEngine, *, key_id: str, address: str, tenant_id: str, actor: str
    ) -> None:
        for item, bucket in ((self.per_key, f"key:{key_id}"), (self.per_address, f"addr:{address}")):
            ok, retry = await self._allowed(item, bucket, hit=True)
            if not ok:
                await self._refuse(
                    engine, bucket, retry, actor=actor, tenant_id=tenant_id, why=f"rate limit {item} reached"
                )

    async def _refuse(
        self, engine: AsyncEngine, bucket: str, retry: int, *, actor: str, why: str, tenant_id: str | None = None
    ) -> None:
        if await self._first_refusal_this_minute(bucket):
            try:
                async with engine.begin() as conn:
                    await append_audit(
                        conn,
                        tenant_id=tenant_id,
                        actor=actor,
                        channel=Channel.api,
                        action="ratelimit.refused",
                        subject_type="rate_limit",
                        subject_id=bucket,
                        data={"reason": why, "sampled": "first refusal per bucket per minute"},
                    )
            except Exception:
                log.warning("could not audit a rate-limit refusal", exc_info=True)
        raise ApiError(429, "rate_limited", f"{why}; retry after {retry} s", headers={"Retry-After": str(retry)})

    async def _first_refusal_this_minute(self, bucket: str) -> bool:
        try:
            return bool(await self.limiter.hit(parse("1/minute"), "refusal-audited", bucket))
        except Exception:
            return False


def client_address(conn: HTTPConnection) -> str:
    """The peer's address, for an HTTP request or a WebSocket."""
    return conn.client.host if conn.client else "unknown"
