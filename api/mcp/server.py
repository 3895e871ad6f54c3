"""The MCPServer: Paygent's tools and resources for agents, each going through the same services, roles,
grants, limits, approvals and audit as the HTTP API (channel `mcp`).

Descriptions are written for the model that reads them: what the tool does, what it costs, what a refusal
looks like and what to do next. Amounts are decimal strings in token units ("0.25"), never numbers.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from pydantic import Field

from api.authz import Role
from api.mcp import memory_tools, outcomes, swap_tools, x402_session_tools
from api.mcp import schemas as o
from api.mcp.access import CANCELS, FETCHES, PAYS, READ, STORES, ToolAccess
from api.mcp.caller import caller
from api.payment_cancel import cancel_payment as cancel
from api.payment_preview import preview_payment as preview
from api.payment_service import PaymentSpec, payment_view, readable_payment, start_payment
from api.payment_service import list_payments as list_rows
from api.services_discovery import discover
from api.wallet_service import balance_view, spending_status, visible_wallets
from paygent.agent_memory import GetArgs, Memory, SearchArgs, SetArgs
from paygent.db.grants import SPEND
from paygent.db.paid_services import find_service, list_services, service_view
from paygent.db.tenancy import tenant_scope, tenant_transaction
from paygent.domain.channels import Channel
from paygent.domain.payment import PaymentKind, PaymentStatus
from paygent.domain.text import SafeText
from paygent.memory.embedding import embedder_from_settings
from paygent.payment_input import DecimalText

INSTRUCTIONS = (
    "Paygent holds the wallets you may spend from. Every payment goes through spending limits and, above some "
    "amounts, human approval: a tool may answer that a payment awaits approval (and by whom); then call "
    "wait_for_payment. A refusal names the limit or rule; do not retry a refused payment. Pass the same "
    "request_id when you retry a call whose answer you did not get: it is never paid twice."
)

WalletId = Annotated[
    str | None,
    Field(
        None, description="The paying wallet's id; omit it when you may spend from one wallet only (see get_balance)"
    ),
]
RequestId = Annotated[
    SafeText | None,
    Field(
        None,
        max_length=200,
        description=(
            "Your idempotency key for this payment: repeat it to retry safely (the same payment is returned, never a "
            "second one). Omit it only if you will not retry."
        ),
    ),
]
Amount = Annotated[
    DecimalText, Field(pattern=r"^[0-9]+(\.[0-9]+)?$", description='Decimal string in token units, e.g. "0.25"')
]
X402_WAIT_SECONDS = 60.0
PAY_WAIT_SECONDS = 10.0


async def _spend_wallet(d, who, wallet_id: str | None) -> str:
    """The wallet to pay from: the one named, or the caller's only spendable wallet."""
    if wallet_id:
        return wallet_id
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        spendable = [(r, g) for r, g in await visible_wallets(conn, who) if SPEND in g]
    if len(spendable) == 1:
        return str(spendable[0][0].id)
    names = ", ".join(f"{r.name} ({r.id})" for r, _ in spendable) or "none"
    raise ToolError(f"wallet_id: say which wallet to pay from; you may spend from: {names}")


async def _paid_answer(d, who, row, ctx: Context, timeout: float) -> dict:
    """Wait for a paid fetch or tool call to settle (or to stop for approval); its answer body and receipt."""
    row = await outcomes.wait(d, who, str(row["id"]), until=outcomes.DECIDED, timeout=timeout, ctx=ctx)
    view = await outcomes.answer(d, row)
    x402 = view.get("x402") or {}
    return {
        "payment_id": view["id"],
        "status": view["status"],
        "amount": view["amount"],
        "asset": view["asset"],
        "pay_to": view["to"],
        "response_status": x402.get("response_status"),
        "body": x402.get("response_body_excerpt"),
        "receipt": x402.get("receipt"),
        **({"approval": view["approval"]} if "approval" in view else {}),
    }


def build_server() -> MCPServer:
    """A fresh server per API app (its Streamable HTTP session manager runs once, in that app's lifespan)."""
    tools = ToolAccess()  # who may call which tool; its middleware filters what each caller is shown
    mcp = MCPServer(
        name="paygent",
        title="Paygent",
        version="0.1.0",
        instructions=INSTRUCTIONS,
        middleware=[tools.middleware],
    )
    tools.bind(mcp)
    memory_tools.register(tools)  # memorize, recall_similar, memory_put, memory_get, memory_search

    @tools.tool(
        READ,
        description="Your wallets' balances, read from the chain now: token (e.g. USDC) and native "
        "(ETH, for gas). Lists every wallet you may see, or only `wallet_id`.",
    )
    async def get_balance(ctx: Context, wallet_id: Annotated[str | None, Field(None)] = None) -> o.Balances:
        d, who = caller(ctx)
        async with tenant_transaction(d.engine, who.tenant_id) as conn:
            seen = await visible_wallets(conn, who)
        rows = [(r, g) for r, g in seen if wallet_id in (None, str(r.id))]
        if wallet_id and not rows:
            raise ToolError("wallet_id: no such wallet among yours")
        return o.Balances.model_validate(
            {"wallets": [{"name": r.name, "may_spend": SPEND in g, **await balance_view(d, r)} for r, g in rows]}
        )

    @tools.tool(
        READ,
        description="Where your spending limits stand, per limit: used (confirmed), reserved (payments in "
        "flight), remaining, and its rolling window in seconds; for each wallet you may spend "
        "from and, for an agent, its own budget. A payment must fit both.",
    )
    async def get_spending_status(
        ctx: Context, wallet_id: Annotated[str | None, Field(None)] = None
    ) -> o.SpendingStatus:
        d, who = caller(ctx)
        async with tenant_transaction(d.engine, who.tenant_id) as conn:
            ids = [r.id for r, g in await visible_wallets(conn, who) if SPEND in g and wallet_id in (None, str(r.id))]
            if wallet_id and not ids:
                raise ToolError("wallet_id: you hold no spend grant on such a wallet")
            status = await spending_status(
                conn, who, ids, asset=d.settings.token_symbol, decimals=d.settings.token_decimals
            )
        return o.SpendingStatus.model_validate(status)

    @tools.tool(
        PAYS,
        description="Pay `amount` of a token to an address (0x...). Spending limits apply and larger "
        "amounts need human approval: the answer gives the payment id and status; when it is "
        "awaiting_approval it says who must approve and how many (then call wait_for_payment). "
        "A refusal is an error naming the limit (e.g. velocity:daily, per_payment_cap).",
    )
    async def pay(
        ctx: Context,
        to: Annotated[SafeText, Field(description="Recipient address, 0x-prefixed")],
        amount: Amount,
        wallet_id: WalletId = None,
        asset: Annotated[SafeText, Field(description="Token symbol")] = "USDC",
        memo: Annotated[SafeText | None, Field(None, max_length=500)] = None,
        request_id: RequestId = None,
    ) -> o.Payment:
        d, who = caller(ctx)
        spec = PaymentSpec(
            wallet_id=await _spend_wallet(d, who, wallet_id), asset=asset, to=to, amount=amount, memo=memo
        )
        row = await start_payment(d, who, spec, request_id or str(uuid.uuid4()), channel=Channel.mcp)
        row = await outcomes.wait(d, who, str(row["id"]), until=outcomes.MOVED, timeout=PAY_WAIT_SECONDS, ctx=ctx)
        return o.Payment.model_validate(await outcomes.answer(d, row))

    @tools.tool(
        PAYS,
        description="Fetch an http(s) URL, paying with x402 if the server asks for payment, at most "
        "`max_amount` (token units). Returns the answer's body, its HTTP status and the "
        "settlement receipt. Limits and approvals apply as for pay.",
    )
    async def x402_fetch(
        ctx: Context,
        url: Annotated[SafeText, Field(max_length=2000)],
        max_amount: Amount,
        wallet_id: WalletId = None,
        request_id: RequestId = None,
    ) -> o.PaidAnswer:
        d, who = caller(ctx)
        spec = PaymentSpec(
            wallet_id=await _spend_wallet(d, who, wallet_id),
            asset=d.settings.token_symbol,
            kind=PaymentKind.x402,
            url=url,
            max_amount=max_amount,
        )
        row = await start_payment(d, who, spec, request_id or str(uuid.uuid4()), channel=Channel.mcp)
        return o.PaidAnswer.model_validate(await _paid_answer(d, who, row, ctx, X402_WAIT_SECONDS))

    @tools.tool(
        PAYS,
        description="Call a paid tool on an MCP server your organisation registered (see "
        "list_paid_services, transport mcp). Paygent pays the tool's x402 price, at most "
        "`max_amount`, through the same limits, approvals and audit as pay, then returns the "
        "tool's answer and the receipt.",
    )
    async def call_paid_tool(
        ctx: Context,
        service: Annotated[str, Field(description="The service's name in list_paid_services")],
        max_amount: Amount,
        arguments: Annotated[dict[str, Any], Field(default_factory=dict, description="The tool's arguments")],
        wallet_id: WalletId = None,
        request_id: RequestId = None,
    ) -> o.PaidAnswer:
        d, who = caller(ctx)
        async with tenant_transaction(d.engine, who.tenant_id) as conn:
            entry = await find_service(conn, who.tenant_id, service)
        if entry is None or entry["transport"] != "mcp" or not entry["tool"]:
            raise ToolError(f"service: no paid MCP tool named {service!r} is registered (see list_paid_services)")
        spec = PaymentSpec(
            wallet_id=await _spend_wallet(d, who, wallet_id),
            asset=d.settings.token_symbol,
            kind=PaymentKind.x402,
            url=entry["url"],
            max_amount=max_amount,
            mcp_tool=entry["tool"],
            mcp_arguments=arguments,
        )
        row = await start_payment(d, who, spec, request_id or str(uuid.uuid4()), channel=Channel.mcp)
        return o.PaidAnswer.model_validate(await _paid_answer(d, who, row, ctx, X402_WAIT_SECONDS))

    @tools.tool(
        READ,
        description="One of your payments by id: status, amount, recipient, transaction hash, failure "
        "reason, and who must approve it while it awaits approval.",
    )
    async def get_payment(ctx: Context, payment_id: str) -> o.Payment:
        d, who = caller(ctx)
        return o.Payment.model_validate(await outcomes.view(d, await readable_payment(d, who, payment_id)))

    @tools.tool(
        READ,
        description="Your payments, newest first (status filter optional). Pass next_cursor back as "
        "`cursor` for the next page.",
    )
    async def list_payments(
        ctx: Context,
        limit: Annotated[int, Field(20, ge=1, le=100)] = 20,
        cursor: str | None = None,
        status: Annotated[PaymentStatus | None, Field(None, description="only payments in this status")] = None,
    ) -> o.PaymentPage:
        d, who = caller(ctx)
        rows, next_cursor = await list_rows(d, who, limit=limit, cursor=cursor, status=status)
        return o.PaymentPage.model_validate(
            {"items": [payment_view(r, d.settings) for r in rows], "next_cursor": next_cursor}
        )

    @tools.tool(
        READ,
        description="Wait (at most timeout_seconds) for a payment to reach a final state: confirmed, "
        "failed, cancelled or refused. Sends a progress notification at each status change. "
        "If it is still waiting when the time is up, the answer says so: call again later.",
    )
    async def wait_for_payment(
        ctx: Context, payment_id: str, timeout_seconds: Annotated[float, Field(30, gt=0, le=120)] = 30
    ) -> o.PaymentWaited:
        d, who = caller(ctx)
        row = await outcomes.wait(d, who, payment_id, until=outcomes.SETTLED, timeout=timeout_seconds, ctx=ctx)
        return o.PaymentWaited.model_validate(
            {**await outcomes.view(d, row), "final": row["status"] in outcomes.SETTLED}
        )

    @tools.tool(
        READ,
        description="The paid services you may use: x402 URLs (use x402_fetch) and paid MCP tools (use "
        "call_paid_tool), with price, asset, network and recipient.",
    )
    async def list_paid_services(ctx: Context) -> o.PaidServices:
        d, who = caller(ctx)
        async with tenant_transaction(d.engine, who.tenant_id) as conn:
            rows = await list_services(conn, who.tenant_id)
        return o.PaidServices.model_validate(
            {"services": [service_view(r, d.settings.token_decimals, d.settings.token) for r in rows]}
        )

    @tools.tool(
        FETCHES,
        roles=(Role.admin,),
        agents=False,
        description="Admins: read a server's x402 offers (its 402 answers, and the discovery extension "
        "where present) into the paid-services registry. `url` is an http(s) resource, or an "
        "MCP endpoint with transport=mcp (each paid tool is registered). Offers on another "
        "network or in an asset the policy rules out are refused and listed with the reason.",
    )
    async def discover_services(ctx: Context, url: str, transport: Literal["http", "mcp"] = "http") -> o.Discovered:
        d, who = caller(ctx)
        return o.Discovered.model_validate(await discover(d, who, url, transport=transport, channel=Channel.mcp))

    @tools.tool(
        STORES,
        description="Remember a short text value under a key (your own memory; optional namespace and ttl_seconds).",
    )
    async def remember(
        ctx: Context,
        key: str,
        value: Annotated[SafeText, Field(max_length=4000)],
        namespace: str = "default",
        ttl_seconds: int | None = None,
    ) -> o.Remembered:
        d, who = caller(ctx)
        with tenant_scope(who.tenant_id):
            stored = await Memory(
                d.engine, d.redis, str(who.tenant_id), str(who.user_id), embedder_from_settings(d.settings)
            ).set(SetArgs(key=key, value=value, namespace=namespace, ttl_seconds=ttl_seconds))
        return o.Remembered.model_validate(stored)

    @tools.tool(
        READ,
        description="Recall what you remembered: the value under `key`, or every key starting with "
        "`prefix` when no key is given.",
    )
    async def recall(ctx: Context, key: str | None = None, prefix: str = "", namespace: str = "default") -> o.Recalled:
        d, who = caller(ctx)
        memory = Memory(d.engine, d.redis, str(who.tenant_id), str(who.user_id), embedder_from_settings(d.settings))
        with tenant_scope(who.tenant_id):
            if key is not None:
                found = await memory.get(GetArgs(key=key, namespace=namespace))
            else:
                found = await memory.search(SearchArgs(prefix=prefix, namespace=namespace))
        return o.Recalled.model_validate(found)

    @tools.tool(
        CANCELS,
        description="Cancel one of your payments before it is signed: it ends `cancelled` and its "
        "reservation is released. Once signing began the money may already be moving: the answer is an "
        "error saying so (not_cancellable), and the payment carries on. Admins may cancel anyone's.",
        roles=(Role.requester, Role.admin),
    )
    async def cancel_payment(
        ctx: Context,
        payment_id: str,
        reason: Annotated[SafeText | None, Field(None, max_length=500, description="why, for the audit log")] = None,
    ) -> o.Cancelled:
        d, who = caller(ctx)
        return o.Cancelled.model_validate(await cancel(d, who, payment_id, channel=Channel.mcp, reason=reason))

    @tools.tool(
        READ,
        description="A dry run of pay: would your spending limits and budget allow this payment now, "
        "which approval tier applies, and who would have to approve. Nothing is reserved, recorded or "
        "paid; others' payments or a policy change can change the answer before you pay.",
    )
    async def preview_payment(
        ctx: Context,
        to: Annotated[SafeText, Field(description="Recipient address, 0x-prefixed")],
        amount: Amount,
        wallet_id: WalletId = None,
        asset: Annotated[SafeText, Field(description="Token symbol")] = "USDC",
    ) -> o.Preview:
        d, who = caller(ctx)
        wallet = await _spend_wallet(d, who, wallet_id)
        return o.Preview.model_validate(await preview(d, who, wallet_id=wallet, to=to, amount=amount, asset=asset))

    @mcp.resource(
        "paygent://wallets/{wallet_id}",
        mime_type="application/json",
        description="A wallet you may see (`all`: every one): name, address, your grants, and its spending policy.",
    )
    async def wallet_resource(wallet_id: str, ctx: Context) -> str:
        d, who = caller(ctx)
        async with tenant_transaction(d.engine, who.tenant_id) as conn:
            seen = [(r, g) for r, g in await visible_wallets(conn, who) if wallet_id in ("all", str(r.id))]
            status = await spending_status(
                conn, who, [r.id for r, _ in seen], asset=d.settings.token_symbol, decimals=d.settings.token_decimals
            )
        policies = {w["wallet_id"]: w for w in status["wallets"]}
        return json.dumps(
            [
                {
                    "id": str(r.id),
                    "name": r.name,
                    "address": r.address,
                    "your_grants": sorted(g),
                    "spending_policy": policies[str(r.id)],
                }
                for r, g in seen
            ]
        )

    @mcp.resource(
        "paygent://policy/{subject}",
        mime_type="application/json",
        description="Your spending policy (`me`): for an agent its own budget, and the policies of "
        "the wallets you may spend from, with where each limit stands.",
    )
    async def policy_resource(subject: str, ctx: Context) -> str:
        d, who = caller(ctx)
        if subject != "me":
            raise ResourceNotFoundError("paygent://policy/{subject}: only `me` is available")
        async with tenant_transaction(d.engine, who.tenant_id) as conn:
            ids = [r.id for r, g in await visible_wallets(conn, who) if SPEND in g]
            return json.dumps(
                await spending_status(conn, who, ids, asset=d.settings.token_symbol, decimals=d.settings.token_decimals)
            )

    x402_session_tools.register(tools)  # x402_session_start|fetch|status|end
    swap_tools.register(tools)  # quote_swap, swap, get_swap
    return mcp
