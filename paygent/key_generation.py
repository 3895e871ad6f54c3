"""The API key generation in Redis: API processes remember who holds a key only while it is unchanged
(api/auth_cache.py). Whatever takes a key away (the API's rotate/disable, `paygent keys rotate-user-key`)
bumps it, so the very next request on any API process asks Postgres again."""

from __future__ import annotations

from redis.asyncio import Redis

GENERATION_KEY = "paygent:api-key-generation"


async def bump(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await redis.incr(GENERATION_KEY)
    finally:
        await redis.aclose()
