"""API key -> Principal, remembered for a few seconds so that a request needs no database round trip to say
who is calling (issue 11: one of the API's per-request round trips).

Why it stays exact: a remembered answer is used only while the key generation in Redis is the one it was
read under. Everything in the API that can take a key away (rotate, disable) bumps the generation after its
transaction commits and before it answers, so the very next request, on any API process, looks the key up in
Postgres again. Without Redis (down, or slow past `REDIS_TIMEOUT`) nothing is remembered: every request asks
Postgres. Entries also expire after `ttl` seconds, which bounds changes made outside the API (a direct SQL
edit, re-provisioning). Unknown keys are never remembered; they go to Postgres and count as failures.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis

from paygent.db.accounts import Principal
from paygent.key_generation import GENERATION_KEY

log = logging.getLogger("paygent.api.auth_cache")
REDIS_TIMEOUT = 0.5


class PrincipalCache:
    def __init__(self, redis: Redis, *, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self._redis = redis
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[bytes, float, Principal]] = {}  # key hash -> (generation, expiry, who)

    async def generation(self) -> bytes | None:
        """The current key generation, or None when Redis cannot say (then nothing may be served from memory)."""
        try:
            value = await asyncio.wait_for(self._redis.get(GENERATION_KEY), REDIS_TIMEOUT)
        except Exception:
            return None
        if isinstance(value, str):  # a client made with `decode_responses`
            value = value.encode()
        return value or b"0"

    def get(self, key_hash: str, generation: bytes | None) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None or generation is None or entry[0] != generation or entry[1] < time.monotonic():
            return None
        return entry[2]

    def put(self, key_hash: str, generation: bytes | None, who: Principal) -> None:
        if generation is None:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()  # crude but bounded; refilled from Postgres within a request each
        self._entries[key_hash] = (generation, time.monotonic() + self._ttl, who)

    async def invalidate(self) -> None:
        """A key was taken away: forget everything here, and make every other API process forget too."""
        self._entries.clear()
        try:
            await asyncio.wait_for(self._redis.incr(GENERATION_KEY), REDIS_TIMEOUT)
        except Exception:  # other processes then serve from memory at most `ttl` seconds more
            log.warning(
                "could not bump the API key generation in Redis; other API processes may accept the "
                "old key for up to the cache TTL",
                exc_info=True,
            )
