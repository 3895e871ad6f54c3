"""The exactly-once x402 client: probe -> check -> sign -> (caller persists) -> send, send, send...

1. `probe(url)`: GET without payment. A 402 yields `Requirements` (v2 `PAYMENT-REQUIRED` header,
   base64 JSON; v1 JSON body); any other answer yields a `Response`.
2. `check(requirements, policy)`: the refusal reason, or None. Nothing is signed for a server that asks
   more than the cap, an unknown asset, another network or a recipient the policy does not allow.
3. `sign(requirements, account, policy)`: an EIP-3009 authorization signed by the official SDK client
   (`x402Client` + `register_exact_evm_client`), returned as a `StoredPayment`; nothing is sent.
4. `send(url, stored)`: sends exactly the stored header (same authorization nonce, same payment
   identifier) on every call, so a retry after a timeout or a 5xx can never pay twice.
`authorization_used` asks the token whether the authorization was consumed (reconciliation).
Every request goes through the egress policy (`paygent.egress`): the host is resolved and checked, the
connection pinned to the checked address, and redirects are never followed (a payment header goes only to
the URL it was signed for). A refused destination raises `EgressRefused`; nothing is sent.
An answer's body is kept (as an excerpt) only when `keep_body` says so: the caller keeps it for answers
Paygent paid for, never for an unpaid probe, so a URL cannot be used to read a service through Paygent.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from pydantic import BaseModel
from web3 import AsyncWeb3
from x402 import x402Client
from x402.http import PAYMENT_REQUIRED_HEADER, PAYMENT_SIGNATURE_HEADER, X_PAYMENT_HEADER
from x402.http.utils import (
    decode_payment_required_header,
    decode_payment_response_header,
    encode_payment_signature_header,
)
from x402.mechanisms.evm import EthAccountSigner
from x402.mechanisms.evm.exact import register_exact_evm_client
from x402.schemas import PaymentRequired
from x402.schemas.v1 import PaymentRequiredV1

from paygent.chain.token import token_abi
from paygent.egress import EgressPolicy
from paygent.x402 import identifier as payment_id
from paygent.x402.policy import X402Policy, choose, requirement_amount

BODY_EXCERPT_CHARS = 2_000
# Settle failures on the server's side, not verdicts on the payment: the same payment may be re-sent.
AMBIGUOUS_SETTLE_REASONS = frozenset({"unexpected_settle_error", "settlement_pending", "transaction_failed"})


class PaymentRefused(Exception):
    """The requirements (or the server's verdict) rule the payment out; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AmbiguousResult(Exception):
    """The request may or may not have reached the server (timeout, reset): re-send the same payment."""


class Requirements(BaseModel):
    """A 402 answer: `payment_required` is the server's PaymentRequired JSON as sent (camelCase)."""

    version: int
    payment_required: dict[str, Any]

    @property
    def accepts(self) -> list[dict[str, Any]]:
        return list(self.payment_required.get("accepts") or [])

    @property
    def error(self) -> str | None:
        return self.payment_required.get("error")


class Response(BaseModel):
    """Any non-402 answer (or the answer to a paid request)."""

    status: int
    headers: dict[str, str]
    body_excerpt: str
    receipt: dict[str, Any] | None = None  # decoded PAYMENT-RESPONSE / X-PAYMENT-RESPONSE
    payment_required: dict[str, Any] | None = None  # decoded PAYMENT-REQUIRED on a paid request's 402

    @property
    def settled(self) -> bool:
        return bool(self.receipt and self.receipt.get("success"))

    @property
    def settle_failed_on_server(self) -> bool:
        """A failed receipt whose reason is the server's trouble (pending, unexpected error, tx failure)."""
        return bool(
            self.receipt
            and not self.receipt.get("success")
            and self.receipt.get("errorReason") in AMBIGUOUS_SETTLE_REASONS
        )


class StoredPayment(BaseModel):
    """A signed payment, persisted before it is first sent and re-sent verbatim ever after.

    It holds a signed authorization for one transfer to one recipient, never a key.
    """

    version: int
    header_name: str
    header_value: str
    payment_identifier: str
    identifier_sent: bool  # False when the server did not declare the payment-identifier extension
    requirement: dict[str, Any]
    payer: str
    authorization_nonce: str
    valid_before: int


def _response(resp: httpx.Response, *, keep_body: bool = False) -> Response:
    receipt = required = None
    raw_receipt = resp.headers.get("payment-response") or resp.headers.get("x-payment-response")
    if raw_receipt:
        try:
            receipt = decode_payment_response_header(raw_receipt).model_dump(by_alias=True, exclude_none=True)
        except Exception:
            receipt = {"success": False, "errorReason": "undecodable PAYMENT-RESPONSE header"}
    if resp.status_code == 402 and resp.headers.get(PAYMENT_REQUIRED_HEADER):
        try:
            required = json.loads(
                decode_payment_required_header(resp.headers[PAYMENT_REQUIRED_HEADER]).model_dump_json(
                    by_alias=True, exclude_none=True
                )
            )
        except Exception:
            required = None
    keep = {
        k: v
        for k, v in resp.headers.items()
        if k.lower()
        in ("content-type", "payment-response", "x-payment-response", "payment-required", "idempotent-replayed")
    }
    return Response(
        status=resp.status_code,
        headers=keep,
        body_excerpt=resp.text[:BODY_EXCERPT_CHARS] if keep_body else "",
        receipt=receipt,
        payment_required=required,
    )


def _parse_402(resp: httpx.Response) -> Requirements:
    header = resp.headers.get(PAYMENT_REQUIRED_HEADER)
    if header:
        parsed = decode_payment_required_header(header)
        return Requirements(
            version=parsed.x402_version,
            payment_required=json.loads(parsed.model_dump_json(by_alias=True, exclude_none=True)),
        )
    try:
        body = resp.json()
    except ValueError:
        raise PaymentRefused("402 without PAYMENT-REQUIRED header or JSON body") from None
    if not isinstance(body, dict) or body.get("x402Version") != 1:
        raise PaymentRefused("402 body is not an x402 v1 PaymentRequired")
    parsed = PaymentRequiredV1.model_validate(body)
    return Requirements(
        version=1, payment_required=json.loads(parsed.model_dump_json(by_alias=True, exclude_none=True))
    )


async def probe(url: str, *, egress: EgressPolicy, timeout: float = 10.0) -> Requirements | Response:
    """GET `url` without paying; the answer's body is not kept (nothing was paid for it).

    Transport errors raise `AmbiguousResult` (safe to retry: nothing signed); a refused destination
    raises `EgressRefused` before anything is sent.
    """
    try:
        async with egress.client(timeout=timeout) as http:
            resp = await http.get(url)
    except httpx.TransportError as exc:
        raise AmbiguousResult(f"probe of {url} failed: {type(exc).__name__}") from None
    return _parse_402(resp) if resp.status_code == 402 else _response(resp)


def check(requirements: Requirements, policy: X402Policy) -> str | None:
    """Why these requirements must not be paid, or None when one of the offered options may be."""
    if requirements.version not in (1, 2):
        return f"x402 version {requirements.version} is not supported"
    return choose(requirements.accepts, policy)[1]


async def sign(
    requirements: Requirements, account: LocalAccount, policy: X402Policy, *, payment_identifier: str | None = None
) -> StoredPayment:
    """Sign the first option the policy allows with the official SDK client; send nothing.

    The SDK sees only that option, and its own spend controls repeat our cap for the asset.
    The payment identifier is attached when the server declared the `payment-identifier` extension.
    """
    index, reason = choose(requirements.accepts, policy)
    if reason is not None or index is None or requirements.version not in (1, 2):
        raise PaymentRefused(reason or f"x402 version {requirements.version} is not supported")
    chosen = requirements.accepts[index]
    identifier = payment_identifier or f"paygent_{uuid.uuid4().hex}"
    client = x402Client()
    register_exact_evm_client(client, EthAccountSigner(account))
    client.set_spend_controls(
        {
            "allowed_assets": [
                {
                    "network": chosen["network"],
                    "asset": chosen["asset"],
                    "max_amount_per_payment": str(policy.max_amount_atomic),
                }
            ]
        }
    )
    wire = {**requirements.payment_required, "accepts": [chosen]}
    if requirements.version == 2:
        payload = await client.create_payment_payload(
            PaymentRequired.model_validate(wire), extensions=payment_id.attach(wire.get("extensions"), identifier)
        )
        header_name = PAYMENT_SIGNATURE_HEADER
    else:
        payload = await client.create_payment_payload(PaymentRequiredV1.model_validate(wire))
        header_name = X_PAYMENT_HEADER
    auth = payload.payload.get("authorization") or {}
    # What was signed must be exactly what was checked.
    zero = "0x" + "0" * 40
    if (
        int(auth.get("value", -1)) != requirement_amount(chosen)
        or to_checksum_address(auth.get("to", zero)) != to_checksum_address(chosen["payTo"])
        or to_checksum_address(auth.get("from", zero)) != account.address
    ):
        raise PaymentRefused("the SDK signed something other than the checked requirement")
    return StoredPayment(
        version=requirements.version,
        header_name=header_name,
        header_value=encode_payment_signature_header(payload),
        payment_identifier=identifier,
        identifier_sent=payment_id.extract(getattr(payload, "extensions", None)) == identifier,
        requirement=chosen,
        payer=to_checksum_address(auth["from"]),
        authorization_nonce=auth["nonce"],
        valid_before=int(auth["validBefore"]),
    )


async def send(url: str, stored: StoredPayment, *, egress: EgressPolicy, timeout: float = 10.0) -> Response:
    """GET `url` with exactly the stored payment header. Transport errors raise `AmbiguousResult`.

    The answer carries a body excerpt: the caller stores it only if the payment settled.
    """
    try:
        async with egress.client(timeout=timeout) as http:
            resp = await http.get(url, headers={stored.header_name: stored.header_value})
    except httpx.TransportError as exc:
        raise AmbiguousResult(f"paid request to {url} got no answer: {type(exc).__name__}") from None
    return _response(resp, keep_body=True)


async def authorization_used(w3: AsyncWeb3, stored: StoredPayment) -> bool:
    """Whether the token has consumed this authorization (EIP-3009 `authorizationState`)."""
    token = w3.eth.contract(address=to_checksum_address(stored.requirement["asset"]), abi=token_abi())
    nonce = bytes.fromhex(stored.authorization_nonce.removeprefix("0x"))
    return bool(await token.functions.authorizationState(stored.payer, nonce).call())


# For callers that make the HTTP request themselves (any method, headers and body: paygent/x402/session_http.py).
parse_402 = _parse_402
response_of = _response
