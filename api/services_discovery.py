"""Discovery: read a server's x402 offers into the tenant's paid-services registry (HTTP API, MCP tool, CLI).

The server must pass the egress policy (paygent/egress.py), like every URL Paygent calls for a tenant. An HTTP
resource is asked once without payment; its 402 answer lists what it accepts. An MCP server lists its
tools, and each is called once without payment; a paid tool answers with its PaymentRequired (x402's MCP
transport). Nothing is ever signed here. Each offer is checked by the same pure rule the payment path uses
(`paygent.x402.policy.refusal`): scheme `exact`, this deployment's network and token, a valid recipient; an
offer that fails is refused with the reason and not stored. The SDK's bazaar discovery extension, when the
server declares it, is kept with the entry (and gives the description).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from api.deps import Deps
from api.errors import ApiError
from paygent.db.accounts import Principal
from paygent.db.audit import append_audit
from paygent.db.paid_services import Offer, save_offer, service_view
from paygent.db.tenancy import tenant_transaction
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.egress import EgressPolicy, EgressRefused, require_allowed
from paygent.x402 import client as x402c
from paygent.x402 import mcp_transport
from paygent.x402.policy import X402Policy, refusal, requirement_amount

UNCAPPED = 2**256 - 1  # discovery registers any price: the payer's cap and limits apply when paying
PROBE_TIMEOUT_SECONDS = 10.0


def _policy(token_address: str, chain_id: int) -> X402Policy:
    return X402Policy(max_amount_atomic=UNCAPPED, allowed_assets=[token_address], network=f"eip155:{chain_id}")


def _describe(required: dict[str, Any], fallback: str) -> tuple[str, dict]:
    bazaar = (required.get("extensions") or {}).get("bazaar") or {}
    info = bazaar.get("info") or {}
    resource = required.get("resource") or {}
    text = (
        info.get("description")
        or (info.get("input") or {}).get("description")
        or resource.get("description")
        or fallback
    )
    return str(text)[:500], ({"bazaar": bazaar} if bazaar else {})


def _offer(
    policy: X402Policy, name: str, url: str, required: dict[str, Any], *, tool: str | None
) -> tuple[Offer | None, str]:
    """The first acceptable option as an Offer, or (None, why none is)."""
    reasons = []
    for option in required.get("accepts") or []:
        reason = refusal(option, policy)
        if reason is None:
            description, metadata = _describe(required, f"paid {'tool ' + tool if tool else 'resource'} {name}")
            return Offer(
                name=name,
                url=url,
                transport="mcp" if tool else "http",
                tool=tool,
                asset=option["asset"],
                price_atomic=requirement_amount(option),
                network=option["network"],
                pay_to=option["payTo"],
                description=description,
                metadata=metadata,
            ), ""
        reasons.append(reason)
    return None, "; ".join(reasons) or "the server offered no payment requirements"


async def _http_offers(url: str, egress: EgressPolicy) -> list[tuple[str, dict | None, str | None]]:
    answer = await x402c.probe(url, egress=egress, timeout=PROBE_TIMEOUT_SECONDS)
    parsed = urlparse(url)
    name = f"{parsed.hostname}{parsed.path or '/'}"
    if isinstance(answer, x402c.Response):
        return [(name, None, f"answered {answer.status} without asking for payment")]
    return [(name, answer.payment_required, None)]


async def _mcp_offers(url: str, egress: EgressPolicy) -> list[tuple[str, dict | None, str | None]]:
    out: list[tuple[str, dict | None, str | None]] = []
    for tool in await mcp_transport.list_tools(url, egress=egress, timeout=PROBE_TIMEOUT_SECONDS):
        answer = await mcp_transport.probe(url, tool.name, {}, egress=egress, timeout=PROBE_TIMEOUT_SECONDS)
        if isinstance(answer, x402c.Requirements):
            out.append((tool.name, answer.payment_required, None))
    return out


async def discover(d: Deps, who: Principal, url: str, *, transport: str, channel: Channel) -> dict:
    """Register every acceptable offer at `url` for the caller's tenant (admins only); refused ones are listed.

    Raises 422 `no_acceptable_offer` when nothing could be registered, naming each reason."""
    if who.is_agent or not who.has_role("admin"):
        raise ApiError(403, "forbidden", "discovering paid services needs a person with the admin role")
    await require_allowed(d.settings, url, field="url")  # the egress policy: never our own network
    if not d.settings.token_address:
        raise ApiError(503, "asset_unavailable", "no token is configured on this server")
    policy = _policy(d.settings.token_address, d.settings.chain_id)
    egress = EgressPolicy.from_settings(d.settings)
    try:
        found = await (_mcp_offers(url, egress) if transport == "mcp" else _http_offers(url, egress))
    except (x402c.AmbiguousResult, x402c.PaymentRefused, EgressRefused) as exc:
        raise ApiError(422, "discovery_failed", f"url: {exc}", "url") from None
    registered, refused = [], []
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        for name, required, problem in found:
            offer, reason = (
                _offer(policy, name, url, required, tool=name if transport == "mcp" else None)
                if required is not None
                else (None, problem or "")
            )
            if offer is None:
                refused.append({"name": name, "reason": reason})
                continue
            service_id = await save_offer(conn, who.tenant_id, offer)
            registered.append(
                service_view(
                    {**offer.__dict__, "id": service_id, "tenant_id": who.tenant_id},
                    d.settings.token_decimals,
                    d.settings.token,
                )
            )
        if not registered:
            detail = "; ".join(f"{r['name']}: {r['reason']}" for r in refused) or "no paid offer found"
            raise ApiError(422, "no_acceptable_offer", f"url: nothing registered ({detail})", "url")
        await append_audit(
            conn,
            tenant_id=who.tenant_id,
            actor=who.actor,
            channel=channel,
            action=AuditAction.paid_service_discovered,
            subject_type=AuditSubject.paid_service,
            subject_id=url,
            data={"transport": transport, "registered": [s["name"] for s in registered], "refused": refused},
        )
    return {"url": url, "transport": transport, "registered": registered, "refused": refused}
