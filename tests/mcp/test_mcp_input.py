"""The MCP `pay` tool refuses what POST /v1/payments refuses (paygent/payment_input.py), naming the argument:
non-ASCII digits, JSON numbers (with the string to send instead), the paying wallet itself, the token contract.
Nothing is recorded."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from eth_account import Account

from paygent.db.schema import payments
from tests.mcp.conftest import error_text, mcp_session


@pytest.mark.parametrize(
    "amount,to,says",
    [
        ("\uff11", None, "amount"),
        ("\u0661", None, "amount"),
        (0.3, None, 'send the amount as a decimal string, "0.3", not as the number 0.3'),
        ("1", "wallet", "to: is the paying wallet's own address"),
        ("1", "token", "to: is the token contract's address"),
    ],
)
async def test_pay_refuses_what_the_http_api_refuses(api_url, agent, app_settings, db_engine, amount, to, says):
    recipient = {"wallet": agent["wallet"]["address"], "token": app_settings.token_address}.get(
        to or "", Account.create().address
    )
    async with db_engine.connect() as conn:
        before = await conn.scalar(sa.select(sa.func.count()).select_from(payments))
    async with mcp_session(api_url, agent["api_key"]) as mcp:
        refused = await mcp.call_tool("pay", {"to": recipient, "amount": amount})
    assert says in error_text(refused), error_text(refused)
    async with db_engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(payments)) == before
