"""`paygent mcp`: Paygent's MCP server over stdio, for desktop clients (Claude Desktop, Cursor, ...).

A bridge, not a second server: it opens one MCP session to the API's `/mcp` (Streamable HTTP) with the API key
from `PAYGENT_API_KEY`, and forwards every tool call, tool list and resource read, and the progress
notifications coming back. Why a bridge: the desktop process then needs no database, Temporal or chain access
and holds no secret but the caller's own key, and every rule (roles, grants, limits, approvals, audit with
channel `mcp`) is enforced in exactly one place, the API. Nothing is printed to stdout but MCP messages;
problems go to stderr.
"""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack

import httpx2
import mcp_types as types
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared._httpx_utils import create_mcp_http_client


class BridgeError(Exception):
    """The API could not be reached or refused the key: said on stderr, exit status 2."""


def _bridge(upstream: ClientSession, init: types.InitializeResult) -> Server:
    async def list_tools(ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return await upstream.list_tools(params=params)

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        async def forward_progress(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)  # a no-op unless the client asked for it

        return await upstream.call_tool(params.name, params.arguments or {}, progress_callback=forward_progress)

    async def list_resources(ctx, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        return await upstream.list_resources(params=params)

    async def list_templates(ctx, params: types.PaginatedRequestParams | None) -> types.ListResourceTemplatesResult:
        return await upstream.list_resource_templates(params=params)

    async def read_resource(ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        return await upstream.read_resource(str(params.uri))

    info = init.server_info
    return Server(
        info.name,
        version=info.version,
        title=info.title,
        instructions=init.instructions,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )


async def serve(api_url: str, api_key: str) -> None:
    """Bridge stdio to `{api_url}/mcp` until the client closes stdin."""
    serving = False
    try:
        async with AsyncExitStack() as stack:
            http = await stack.enter_async_context(
                create_mcp_http_client(headers={"Authorization": f"Bearer {api_key}"})
            )
            await _check_key(http, api_url)
            read, write = await stack.enter_async_context(
                streamable_http_client(api_url.rstrip("/") + "/mcp", http_client=http)
            )
            upstream = await stack.enter_async_context(ClientSession(read, write))
            server = _bridge(upstream, await upstream.initialize())
            serving = True
            async with stdio_server() as (stdin, stdout):
                await server.run(stdin, stdout, server.create_initialization_options())
    except BridgeError:
        raise
    except Exception as exc:  # includes the SDK's exception groups; the key is never part of the message
        if serving:
            raise
        raise BridgeError(f"cannot open an MCP session at {api_url}/mcp: {_reason(exc)}") from None


async def _check_key(http: httpx2.AsyncClient, api_url: str) -> None:
    """Say plainly when the key is refused (the MCP transport would only report "an error response")."""
    resp = await http.get(api_url.rstrip("/") + "/v1/wallets")
    if resp.status_code in (401, 403, 429):
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.reason_phrase
        raise BridgeError(f"the API refused PAYGENT_API_KEY (HTTP {resp.status_code}: {message})")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def run(api_url: str, api_key: str) -> int:
    import anyio

    try:
        anyio.run(serve, api_url, api_key)
    except BridgeError as exc:
        print(f"paygent mcp: {exc}", file=sys.stderr)
        return 2
    return 0
