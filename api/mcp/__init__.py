"""Paygent as an MCP server (the official `mcp` SDK): the tools an agent needs to spend under governance.

- `server.py` builds the MCPServer: tools (get_balance, get_spending_status, pay, x402_fetch, get_payment,
  list_payments, wait_for_payment, list_paid_services, call_paid_tool, discover_services, remember, recall)
  and resources (the caller's wallets and policy).
- `route.py` serves it over Streamable HTTP at `/mcp` inside the API: the caller is authenticated and its role
  checked by the same `allow(...)` dependency as every HTTP route, before the MCP transport sees the request.
- `caller.py` gives each tool the caller and the API's shared clients, and turns refusals into tool errors.
Every tool goes through the services the HTTP API uses (api/payment_service.py, api/authz.py, ...), with
audit channel `mcp`. `paygent mcp` (paygent/mcp_stdio.py) bridges stdio to this endpoint for desktop clients.
"""
