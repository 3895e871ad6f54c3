"""How Paygent talks to a node: `async_web3(url)`, everywhere (workers, API, CLI, stack, tests, benchmarks).

web3.py's `HTTPSessionManager` guards its aiohttp session cache with one `threading.Lock` that every provider of
the process shares (a class attribute), and takes it on every async request through a thread-pool hop
(`async_lock`: `run_in_executor(pool, lock.acquire)`). A request cancelled while that acquire is in flight
leaves the lock held for ever (ethereum/web3.py issue 3867; the fix, PR 3872, is not released): from then on
every HTTP request of the process that needs the lock, async or sync, waits without end. Paygent cancels
requests as a matter of course (activity timeouts and cancellation, `asyncio.wait_for`, a worker shutting
down), and seen here: a test's x402 facilitator (the SDK's sync web3) blocked on that lock for good
(faulthandler's stack, 2026-12-07), the likely cause of a CI run that hung until its limit.

`NodeProvider` is web3's AsyncHTTPProvider with a session manager of its own: one aiohttp session per event
loop for that provider, no thread lock, no thread hop per request (one less cost per RPC on the payment path).
Sessions are made as web3 makes them (raise_for_status, a connection per request), so requests behave as before.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from web3 import AsyncWeb3
from web3._utils.http_session_manager import HTTPSessionManager
from web3.providers.rpc import AsyncHTTPProvider

__all__ = ["NodeProvider", "async_web3"]


class _LoopSessions(HTTPSessionManager):
    """One aiohttp session per event loop, kept by this provider alone."""

    def __init__(self) -> None:
        super().__init__()
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClientSession] = (
            weakref.WeakKeyDictionary()
        )

    async def async_cache_and_return_session(
        self, endpoint_uri: Any, session: ClientSession | None = None, request_timeout: ClientTimeout | None = None
    ) -> ClientSession:
        loop = asyncio.get_running_loop()
        cached = self._sessions.get(loop)
        if cached is None or cached.closed:
            cached = session or ClientSession(
                raise_for_status=True, connector=TCPConnector(force_close=True, enable_cleanup_closed=True)
            )
            self._sessions[loop] = cached
        return cached


class NodeProvider(AsyncHTTPProvider):
    """AsyncHTTPProvider without web3's process-wide session lock (see the module's docstring)."""

    def __init__(self, endpoint_uri: str, **kwargs: Any) -> None:
        super().__init__(endpoint_uri, **kwargs)
        self._request_session_manager = _LoopSessions()


def async_web3(rpc_url: str) -> AsyncWeb3:
    """An AsyncWeb3 for the node at `rpc_url`."""
    return AsyncWeb3(NodeProvider(rpc_url))
