"""The local paid service's MCP server: tools priced with x402, paid through MCP's `_meta` (the SDK's
`x402.mcp` server wrapper verifies, runs the tool, settles, and puts the receipt in the result's `_meta`).

Tools: `forecast` (0.01 USDC: a city's weather) and `premium_report` (2 USDC). Each declares the SDK's bazaar
discovery extension, so `paygent services discover URL --transport mcp` registers them with a description.

Why not `x402.mcp.create_payment_wrapper` as its README shows: that decorator imports `mcp.server.fastmcp`,
which mcp 2 removed (FastMCP is now MCPServer). The SDK's async wrapper (`x402.mcp.server_async`) is
transport-neutral; `_bridge` below hands it the request's `_meta` and turns its result into a CallToolResult.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from eth_utils import to_checksum_address
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent
from pydantic import Field
from x402 import x402ResourceServer
from x402.extensions.bazaar import DeclareMcpDiscoveryConfig, declare_mcp_discovery_extension
from x402.mcp.server_async import PaymentWrapperConfig, create_payment_wrapper
from x402.mcp.types import MCPToolContext, MCPToolResult
from x402.schemas import PaymentRequirements, ResourceInfo

from paygent.chain.token import TOKEN_NAME, TOKEN_VERSION

MCP_PRICES_ATOMIC = {"forecast": 10_000, "premium_report": 2_000_000}
MAX_TIMEOUT_SECONDS = 300


def _requirements(network: str, token: str, pay_to: str, amount: int) -> PaymentRequirements:
    return PaymentRequirements(
        scheme="exact",
        network=network,
        asset=to_checksum_address(token),
        amount=str(amount),
        pay_to=to_checksum_address(pay_to),
        max_timeout_seconds=MAX_TIMEOUT_SECONDS,
        extra={"name": TOKEN_NAME, "version": TOKEN_VERSION},
    )


def _bridge(paid: Callable, handler: Callable[[dict, MCPToolContext], Awaitable[dict]], name: str):
    """The SDK's wrapped handler, called with this request's `_meta`; its result as a CallToolResult."""
    wrapped = paid(handler)

    async def call(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        meta = dict(ctx.request_context.meta or {})
        result: MCPToolResult = await wrapped(arguments, {"_meta": meta, "toolName": name})
        return CallToolResult(
            content=[TextContent(type="text", text=c.get("text", "")) for c in result.content],
            structured_content=result.structured_content,
            is_error=result.is_error,
            meta=result.meta or None,
        )

    return call


def build_paid_mcp(server: x402ResourceServer, *, network: str, token: str, pay_to: str) -> MCPServer:
    mcp = MCPServer(
        name="paygent-paid-tools",
        version="0.1.0",
        instructions="Paid tools: each call costs its x402 price (see the 402 answer).",
    )

    async def forecast_handler(args: dict, _: MCPToolContext) -> dict:
        city = str(args.get("city") or "Lisbon")
        return {
            "content": [{"type": "text", "text": f'{{"city": "{city}", "forecast": "sunny", "temperature_c": 21}}'}]
        }

    async def report_handler(args: dict, _: MCPToolContext) -> dict:
        return {"content": [{"type": "text", "text": '{"report": "premium market summary", "items": 3}'}]}

    for name, handler, description in (
        ("forecast", forecast_handler, "Weather forecast for a city (0.01 USDC a call)"),
        ("premium_report", report_handler, "Premium market report (2 USDC a call)"),
    ):
        paid = create_payment_wrapper(
            server,
            PaymentWrapperConfig(
                accepts=[_requirements(network, token, pay_to, MCP_PRICES_ATOMIC[name])],
                resource=ResourceInfo(url=f"mcp://tool/{name}", description=description, mime_type="application/json"),
                extensions=declare_mcp_discovery_extension(
                    DeclareMcpDiscoveryConfig(
                        tool_name=name,
                        description=description,
                        input_schema={"properties": {"city": {"type": "string"}}},
                        example={"city": "Lisbon"},
                    )
                ),
            ),
        )
        mcp.add_tool(_tool(_bridge(paid, handler, name)), name=name, description=description)
    return mcp


def _tool(call):
    async def tool(
        ctx: Context, city: Annotated[str | None, Field(None, description="A city")] = None
    ) -> CallToolResult:
        return await call({"city": city} if city else {}, ctx)

    return tool
