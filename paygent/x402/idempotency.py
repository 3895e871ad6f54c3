"""The paid service's answers to paid requests: replayed by payment identifier, never a 402 for its own failure.

An ASGI middleware placed outside the x402 payment middleware, acting on requests that carry a
payment header (`PAYMENT-SIGNATURE` / `X-PAYMENT`):
- Server failures are not payment failures. The SDK middleware answers 402 when settlement breaks
  on the server's side (an exception while settling, or a settlement still pending); a client
  reading that 402 as "pay again" would pay twice. Such answers become 502, keeping the
  PAYMENT-RESPONSE receipt.
- `payment-identifier` idempotency. The first request with an identifier runs normally; if it settled
  (a successful PAYMENT-RESPONSE receipt), its status, headers and body are recorded. The same
  identifier with the same payload later gets the recorded answer again (header
  `Idempotent-Replayed: true`) without touching the chain; with a different payload, 409.
  Requests for one identifier are serialised, so concurrent retries cannot both reach settlement.
  The records and the per-identifier lock live in Redis (`RedisAnswers`), not in the process: a restarted
  service (or a second replica) still answers a replayed payment from its record instead of settling it again.
- `hold_first_response_paths`: there a freshly settled answer is held back until the client
  disconnects (or `hold_seconds` pass): a real "settled, but the response was lost". Replays go at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from dataclasses import dataclass

from redis.asyncio import Redis
from x402.http.utils import decode_payment_response_header, decode_payment_signature_header
from x402.schemas import PaymentPayload

from paygent.x402.identifier import extract

REPLAYED_HEADER = "idempotent-replayed"
# Settle failures that say nothing about the payment itself (the SDK's own reason codes).
SERVER_SIDE_SETTLE_FAILURES = frozenset({"unexpected_settle_error", "settlement_pending"})


@dataclass
class _Answer:
    fingerprint: str
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _receipt(headers: list[tuple[bytes, bytes]]):
    for name, value in headers:
        if name.lower() in (b"payment-response", b"x-payment-response"):
            try:
                return decode_payment_response_header(value.decode("latin-1"))
            except Exception:
                return None
    return None


def _settled(answer: _Answer) -> bool:
    receipt = _receipt(answer.headers)
    return bool(receipt and receipt.success)


def _no_402_for_server_failures(answer: _Answer) -> _Answer:
    receipt = _receipt(answer.headers) if answer.status == 402 else None
    if receipt is None or receipt.success or receipt.error_reason not in SERVER_SIDE_SETTLE_FAILURES:
        return answer
    body = json.dumps({"error": "settlement failed on the server side", "reason": receipt.error_reason}).encode()
    headers = [(k, v) for k, v in answer.headers if k.lower() not in (b"content-length", b"content-type")]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return _Answer(answer.fingerprint, 502, headers, body)


class RedisAnswers:
    """Settled answers by payment identifier, in Redis, under `namespace` (the service's pay-to address).

    Kept `ttl_seconds` (a week by default: far longer than any authorization the service accepts stays valid).
    """

    def __init__(
        self, redis: Redis, namespace: str, *, ttl_seconds: int = 7 * 86400, lock_seconds: float = 120.0
    ) -> None:
        self._redis, self._prefix = redis, f"paygent:x402:answers:{namespace.lower()}:"
        self._ttl, self._lock_seconds = ttl_seconds, lock_seconds

    async def get(self, identifier: str) -> _Answer | None:
        raw = await self._redis.get(self._prefix + identifier)
        if raw is None:
            return None
        data = json.loads(raw)
        return _Answer(
            data["fingerprint"],
            data["status"],
            [(k.encode("latin-1"), v.encode("latin-1")) for k, v in data["headers"]],
            base64.b64decode(data["body"]),
        )

    async def put(self, identifier: str, answer: _Answer) -> None:
        data = {
            "fingerprint": answer.fingerprint,
            "status": answer.status,
            "headers": [(k.decode("latin-1"), v.decode("latin-1")) for k, v in answer.headers],
            "body": base64.b64encode(answer.body).decode(),
        }
        await self._redis.set(self._prefix + identifier, json.dumps(data), ex=self._ttl)

    def lock(self, identifier: str):
        """Serialises requests for one identifier across processes; expires if its holder dies."""
        return self._redis.lock(
            self._prefix + identifier + ":lock", timeout=self._lock_seconds, blocking_timeout=self._lock_seconds + 10
        )


class PaymentIdentifierCache:
    def __init__(
        self,
        app,
        answers: RedisAnswers,
        hold_first_response_paths: set[str] | frozenset[str] = frozenset(),
        hold_seconds: float = 10.0,
    ) -> None:
        self.app = app
        self.answers = answers
        self.hold_paths = frozenset(hold_first_response_paths)
        self.hold_seconds = hold_seconds

    @staticmethod
    def _identify(scope) -> tuple[bool, str | None, str]:
        """(carries a payment, its payment identifier or None, payload fingerprint)."""
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        raw = headers.get(b"payment-signature") or headers.get(b"x-payment")
        if not raw:
            return False, None, ""
        try:
            payload = decode_payment_signature_header(raw.decode("latin-1"))
        except Exception:
            return True, None, ""  # malformed: the x402 middleware answers it
        identifier = (
            extract(payload.extensions) if isinstance(payload, PaymentPayload) and payload.x402_version == 2 else None
        )
        canonical = json.dumps(payload.model_dump(by_alias=True, exclude_none=True), sort_keys=True)
        return True, identifier, hashlib.sha256(canonical.encode()).hexdigest()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        paid, identifier, fingerprint = self._identify(scope)
        if not paid:
            return await self.app(scope, receive, send)
        if identifier is None:
            answer = await self._run(scope, receive, fingerprint)
            fresh = _settled(answer)
        else:
            answer, fresh = await self._answer(scope, receive, identifier, fingerprint)
        if fresh and scope.get("path") in self.hold_paths and await self._client_left(receive):
            return  # the settled answer is lost with the connection
        await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def _answer(self, scope, receive, identifier: str, fingerprint: str) -> tuple[_Answer, bool]:
        """(the answer, whether it settled just now) for a request carrying a payment identifier."""
        async with self.answers.lock(identifier):
            answer = await self.answers.get(identifier)
            if answer is None:
                answer = await self._run(scope, receive, fingerprint)
                if not _settled(answer):
                    return answer, False
                await self.answers.put(identifier, answer)
                return answer, True
        if answer.fingerprint != fingerprint:
            body = json.dumps({"error": "payment identifier already used with a different payment"}).encode()
            return _Answer(fingerprint, 409, [(b"content-type", b"application/json")], body), False
        return _Answer(
            fingerprint, answer.status, answer.headers + [(REPLAYED_HEADER.encode(), b"true")], answer.body
        ), False

    async def _run(self, scope, receive, fingerprint: str) -> _Answer:
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        answer = _Answer(fingerprint, start.get("status", 500), list(start.get("headers", [])), b"".join(chunks))
        return _no_402_for_server_failures(answer)

    async def _client_left(self, receive) -> bool:
        """Hold the answer until the client disconnects (True) or `hold_seconds` pass (False)."""

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        try:
            await asyncio.wait_for(disconnected(), timeout=self.hold_seconds)
            return True
        except TimeoutError:
            return False
