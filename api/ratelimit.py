"""Rate limits in Redis, with the `limits` library: failed authentications per client address and per presented
key (hard), and requests per API key and per address (generous). Limits are settings (`PAYGENT_RATE_LIMIT_*`, in
the `limits` notation such as "5/minute").

Failed authentications throttle failures only. Past the limit, an address's further *failed* attempts are
answered 429 instead of 401, but a valid key from that address is still served: one process retrying a rotated
key must not lock out everyone else on its host (or behind its proxy). Failures are also counted per presented
key (a SHA-256 of the whole key, separate from the stored key hash), so a retired key that keeps being retried is
refused before it is even looked up, from any address, without touching anyone else's key.

A refusal is 429 with `Retry-After`. Refusals are audited at a sampled rate (at most one audit row per
bucket and minute), never per request. When Redis is down the API keeps serving: limits fail open, a warning
is logged once a minute, and `/readyz` reports Redis as down (`degraded`).
"""

from __future__ import annotations

import hashlib
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
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.settings import Settings

log = logging.getLogger("paygent.api.ratelimit")


# a refusal's bucket prefix -> the cause /metrics counts it under (paygent_rate_limited_total{cause})
RATE_LIMIT_CAUSES = {"key": "per_key", "addr": "per_address", "authfail": "auth_failures"}


@dataclass
class RateLimits:
    limiter: SlidingWindowCounterRateLimiter
    storage: RedisStorage
    auth_failures: RateLimitItem
    key_failures: RateLimitItem
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
            key_failures=parse(settings.rate_limit_key_failures),
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

    async def check_key_not_blocked(self, engine: AsyncEngine, key: str, address: str) -> None:
        """Before looking a key up: a key that failed too often recently is refused (it is no key of ours)."""
        bucket = presented_key_bucket(key)
        ok, retry = await self._allowed(self.key_failures, "keyfail", bucket, hit=False)
        if not ok:
            await self._refuse(
                engine,
                f"keyfail:{bucket}",
                retry,
                actor=f"anonymous@{address}",
                why="too many failed authentications with this key",
            )

    async def record_auth_failure(self, engine: AsyncEngine, address: str, key: str | None) -> None:
        """Count a failed authentication against the address and the presented key; past either limit, 429
        (raised here) instead of the caller's 401."""
        counted = [(self.auth_failures, "authfail", address, "from this address")]
        if key is not None:
            counted.append((self.key_failures, "keyfail", presented_key_bucket(key), "with this key"))
        for item, kind, bucket, where in counted:
            ok, retry = await self._allowed(item, kind, bucket, hit=True)
            if not ok:
                await self._refuse(
                    engine,
                    f"{kind}:{bucket}",
                    retry,
                    actor=f"anonymous@{address}",
                    why=f"too many failed authentications {where}",
                )

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
                        action=AuditAction.rate_limit_refused,
                        subject_type=AuditSubject.rate_limit,
                        subject_id=bucket,
                        data={"reason": why, "sampled": "first refusal per bucket per minute"},
                    )
            except Exception:
                log.warning("could not audit a rate-limit refusal", exc_info=True)
        cause = RATE_LIMIT_CAUSES.get(bucket.partition(":")[0], "other")
        raise ApiError(
            429, "rate_limited", f"{why}; retry after {retry} s", headers={"Retry-After": str(retry)}, cause=cause
        )

    async def _first_refusal_this_minute(self, bucket: str) -> bool:
        try:
            return bool(await self.limiter.hit(parse("1/minute"), "refusal-audited", bucket))
        except Exception:
            return False


def presented_key_bucket(key: str) -> str:
    """Names a presented key in Redis and in audit rows: a hash of the whole key, domain-separated from the
    stored verifier (paygent/crypto.py), so neither reveals the key nor points at its row."""
    return hashlib.sha256(b"paygent-ratelimit-key:" + key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def client_address(conn: HTTPConnection) -> str:
    """The peer's address, for an HTTP request or a WebSocket, as uvicorn gives it: the socket's peer, or the
    forwarded address when the peer is a proxy named in PAYGENT_TRUSTED_PROXIES (paygent/cli/main.py)."""
    return conn.client.host if conn.client else "unknown"
