"""One x402 HTTP exchange for a session's paid request: any method, the caller's headers and body, the answer's
whole body (at most MAX_BODY_BYTES), through the egress policy.

`exchange(..., payment=None)` asks unpaid: a 402 comes back as `Requirements`; any other answer as an `Answer`
with its body. `exchange(..., payment=stored)` sends exactly the stored payment header (every retry re-sends the
same one). A body over the limit is not read past it: `Answer.too_large` says so. Transport errors raise
`AmbiguousResult`; a refused destination raises `EgressRefused` before anything is sent.
"""

from __future__ import annotations

import httpx

from paygent.domain.x402_session import MAX_BODY_BYTES
from paygent.egress import EgressPolicy
from paygent.x402 import client as x402c

# headers a caller may not set: the payment header is Paygent's, the rest belong to the transport
RESERVED_HEADERS = frozenset(
    {
        "payment-signature",
        "x-payment",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
    }
)
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"})


class Answer(x402c.Response):
    body: bytes = b""
    too_large: bool = False
    all_headers: dict[str, str] = {}


def caller_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in RESERVED_HEADERS}


class OriginClients:
    """One keep-alive egress client per origin (and egress exemptions), kept for the worker's life.

    A paid request asks the price and then pays on the same warm connection, like the SDK's own client, instead of
    building a client (and its TLS context) and connecting twice. Each client only ever talks to one origin, so a
    kept connection is never reused for another host name; every request is still checked and pinned.
    """

    def __init__(self, most: int = 64) -> None:
        self._clients: dict[tuple[str, str], httpx.AsyncClient] = {}
        self._most = most

    def get(self, url: str, egress_allow: str) -> httpx.AsyncClient:
        parts = httpx.URL(url)
        key = (f"{parts.scheme}://{parts.host}:{parts.port}", egress_allow)
        client = self._clients.pop(key, None)
        if client is None or client.is_closed:
            client = EgressPolicy(egress_allow).client(timeout=30.0, keep_alive=True)
        self._clients[key] = client  # most recently used last
        while len(self._clients) > self._most:  # dropped, not closed: a request may still be using it
            del self._clients[next(iter(self._clients))]
        return client


async def exchange(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    content: bytes | None,
    http: httpx.AsyncClient,
    timeout: float,
    payment: x402c.StoredPayment | None = None,
) -> x402c.Requirements | Answer:
    """One request on `http` (an egress client: OriginClients.get, or EgressPolicy.client)."""
    sent = caller_headers(headers)
    if payment is not None:
        sent[payment.header_name] = payment.header_value
    try:
        async with http.stream(method, url, headers=sent, content=content, timeout=timeout) as resp:
            if resp.status_code == 402 and payment is None:
                await resp.aread()
                return x402c.parse_402(resp)
            body, too_large = await _read(resp)
    except httpx.TransportError as exc:
        raise x402c.AmbiguousResult(f"{method} {url} got no answer: {type(exc).__name__}") from None
    described = x402c.response_of(resp, keep_body=False)
    return Answer(
        **described.model_dump(),
        body=body,
        too_large=too_large,
        all_headers={k.lower(): v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP},
    )


async def _read(resp: httpx.Response) -> tuple[bytes, bool]:
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return b"", True
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", True
        chunks.append(chunk)
    return b"".join(chunks), False


def declared_size(requirement: dict) -> int | None:
    """The paid answer's size in bytes when the server declares it in its 402 (`extra.contentLength`)."""
    value = (requirement.get("extra") or {}).get("contentLength")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
