"""x402 over MCP: a paid tool on an MCP server, probed and paid like an x402 URL (the `x402/payment` _meta key).

The protocol (x402's MCP transport, as the SDK's `x402.mcp` server wrapper speaks it): a tool call without
payment answers a tool error whose structured content is the PaymentRequired JSON (version 2); the same call
with `_meta["x402/payment"]` = the signed PaymentPayload runs the tool, settles, and returns the receipt in
the result's `_meta["x402/payment-response"]`.

Answers are mapped onto `paygent.x402.client`'s types, so the x402 activities classify them exactly like HTTP
ones: payment required -> `Requirements` (probe) or status 402 (send); a successful call -> 200; another tool
error -> 500 when settled, else 422 (a verdict on the call, not on the payment). No answer (connection
refused, reset, timeout) -> `AmbiguousResult`: the workflow re-sends the same signed payload, never a new one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, RequestParamsMeta, Tool
from x402.http.utils import decode_payment_signature_header
from x402.mcp.constants import MCP_PAYMENT_META_KEY, MCP_PAYMENT_RESPONSE_META_KEY

from paygent.egress import EgressPolicy
from paygent.x402.client import BODY_EXCERPT_CHARS, AmbiguousResult, Requirements, Response, StoredPayment


@asynccontextmanager
async def session(url: str, *, egress: EgressPolicy, timeout: float) -> AsyncIterator[ClientSession]:
    """An initialised MCP client session to the server at `url` (Streamable HTTP), once the egress policy has
    checked the destination (raises EgressRefused). The SDK speaks httpx2, so the connection is not pinned to
    the checked address as `EgressPolicy.client()` pins httpx requests: the check runs before every session."""
    await egress.check(url)
    http = create_mcp_http_client(timeout=httpx2.Timeout(timeout))
    async with http, streamable_http_client(url, http_client=http) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=timeout) as s:
            await s.initialize()
            yield s


def _text(result: CallToolResult) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def _payment_required(result: CallToolResult) -> dict[str, Any] | None:
    """The PaymentRequired JSON of an unpaid (or refused) call, if that is what the tool error says."""
    if not result.is_error:
        return None
    data = result.structured_content
    if not isinstance(data, dict):
        try:
            data = json.loads(_text(result))
        except ValueError:
            return None
    return data if isinstance(data, dict) and "accepts" in data and "x402Version" in data else None


async def _call(
    url: str,
    tool: str,
    arguments: dict[str, Any],
    meta: RequestParamsMeta | None,
    egress: EgressPolicy,
    timeout: float,
) -> CallToolResult:
    try:
        async with session(url, egress=egress, timeout=timeout) as s:
            return await s.call_tool(tool, arguments, meta=meta)
    except (httpx2.TransportError, MCPError, OSError, TimeoutError) as exc:
        raise AmbiguousResult(f"MCP call {tool} at {url} got no answer: {type(exc).__name__}") from None
    except BaseExceptionGroup as group:  # the SDK's task group wraps transport failures
        raise AmbiguousResult(
            f"MCP call {tool} at {url} got no answer: {', '.join(type(e).__name__ for e in group.exceptions)}"
        ) from None


async def list_tools(url: str, *, egress: EgressPolicy, timeout: float = 10.0) -> list[Tool]:
    try:
        async with session(url, egress=egress, timeout=timeout) as s:
            return list((await s.list_tools()).tools)
    except (httpx2.TransportError, MCPError, OSError, TimeoutError, BaseExceptionGroup) as exc:
        raise AmbiguousResult(f"MCP server at {url} did not list its tools: {type(exc).__name__}") from None


async def probe(
    url: str, tool: str, arguments: dict[str, Any], *, egress: EgressPolicy, timeout: float = 10.0
) -> Requirements | Response:
    """Call the tool without paying: its PaymentRequired, or (a free tool) its answer."""
    result = await _call(url, tool, arguments, None, egress, timeout)
    required = _payment_required(result)
    if required is not None:
        return Requirements(version=int(required["x402Version"]), payment_required=required)
    return _response(result)


async def send(
    url: str,
    tool: str,
    arguments: dict[str, Any],
    stored: StoredPayment,
    *,
    egress: EgressPolicy,
    timeout: float = 10.0,
) -> Response:
    """Call the tool with exactly the stored payment (the signed payload inside the stored header)."""
    payload = decode_payment_signature_header(stored.header_value).model_dump(by_alias=True, exclude_none=True)
    # RequestParamsMeta is an open TypedDict (PEP 728 `extra_items`), which mypy does not model yet
    meta = cast(RequestParamsMeta, {MCP_PAYMENT_META_KEY: payload})
    return _response(await _call(url, tool, arguments, meta, egress, timeout))


def _response(result: CallToolResult) -> Response:
    receipt = (result.meta or {}).get(MCP_PAYMENT_RESPONSE_META_KEY)
    required = _payment_required(result)
    if required is not None:
        receipt = receipt or required.get(MCP_PAYMENT_RESPONSE_META_KEY)
        status = 402
    elif result.is_error:
        status = 500 if receipt and receipt.get("success") else 422
    else:
        status = 200
    return Response(
        status=status,
        headers={"content-type": "application/json"},
        body_excerpt=_text(result)[:BODY_EXCERPT_CHARS],
        receipt=receipt,
        payment_required=required,
    )
