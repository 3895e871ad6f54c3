"""The channel an action came through, as the audit log records it (`audit_log.channel`)."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    api = "api"  # an HTTP request with an API key
    cli = "cli"  # the `paygent` command (through the API, which stamps the claim)
    mcp = "mcp"  # an MCP client (api/mcp/)
    temporal = "temporal"  # a Signal sent with Temporal's own tools, or an agent run acting in a workflow
    system = "system"  # Paygent itself: timeouts, time-locks, the reconciler


# What an HTTP caller may claim in X-Paygent-Channel (a Signal is always `temporal`, MCP is set by its route).
CLAIMABLE = (Channel.api, Channel.cli)
