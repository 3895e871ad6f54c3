"""A payment's dry run: would the spending limits and budget allow it now, which approval tier applies, and who
would have to approve. The same rules a real payment meets (paygent.db.reservations.check_policies, the
approval policy's tier_index), read in one transaction that writes nothing: no payment row, no reservation, no
audit entry, no workflow. The answer can change before a real payment: others spend, policies change.
"""

from __future__ import annotations

import uuid

from api.authz import spendable_wallet
from api.deps import Deps
from paygent.db import policies, reservations
from paygent.db.accounts import Principal
from paygent.db.agents import load_agent_policy
from paygent.db.tenancy import tenant_transaction
from paygent.domain.approval_policy import needs_approval, tier_index
from paygent.domain.errors import InvalidInput
from paygent.domain.money import Unit, format_amount, format_window
from paygent.domain.payment import PaymentKind
from paygent.domain.spending import LimitRefusal
from paygent.payment_input import PaymentFields, check_payment_input


async def preview_payment(d: Deps, who: Principal, *, wallet_id: str, to: str, amount: str, asset: str) -> dict:
    """What a transfer of `amount` to `to` from `wallet_id` would meet now (see the module's docstring)."""
    try:
        wid = uuid.UUID(wallet_id)
    except ValueError:
        raise InvalidInput("wallet_id", "must be a UUID") from None
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        wallet = await spendable_wallet(conn, who, wid)
        checked = await check_payment_input(  # the one validation every payment meets
            d.settings,
            PaymentFields(kind=PaymentKind.transfer, asset=asset, to=to, amount=amount),
            payer=wallet.address,
        )
        asset, decimals, amount_atomic, recipient = checked.asset, checked.decimals, checked.amount_atomic, checked.to
        unit = Unit(decimals, asset)
        policy = await reservations.load_policy(conn, wallet.id)
        agent = await load_agent_policy(conn, who.user_id) if who.is_agent else None
        refusal: LimitRefusal | None
        if agent is not None and agent[1]:
            refusal = LimitRefusal(limit="agent:disabled", message="the agent is disabled")
        else:
            refusal = await reservations.check_policies(
                conn,
                policy,
                wallet.id,
                agent,
                who.user_id if agent is not None else None,
                to=recipient,
                asset=asset,
                amount_atomic=amount_atomic,
                unit=unit,
            )
        approval = await policies.load_policy(conn, who.tenant_id, wallet.id, decimals=decimals)
    index = tier_index(approval, amount_atomic)
    tier = approval.tiers[index]
    approve = needs_approval(approval, amount_atomic)
    text = unit.text(amount_atomic)
    if refusal is not None:
        summary = f"{text} to {recipient} would be refused: {refusal.message}"
    elif not approve:
        summary = f"{text} to {recipient} would be paid without approval"
    else:
        who_approves = tier.describe() if tier.approvals_required else "nobody"
        window = format_window(tier.timelock_seconds)
        lock = (
            f", then a time-lock of {window if window[0].isdigit() else '1 ' + window}" if tier.timelock_seconds else ""
        )
        summary = f"{text} to {recipient} would wait for approval by {who_approves}{lock}"
    return {
        "allowed": refusal is None,
        "amount": format_amount(amount_atomic, decimals),
        "amount_atomic": str(amount_atomic),
        "amount_text": text,
        "wallet_id": str(wallet.id),
        "to": recipient,
        "refusal": None
        if refusal is None
        else {k: str(v) if isinstance(v, int) else v for k, v in refusal.model_dump(exclude_none=True).items()},
        "needs_approval": approve,
        "tier": {
            "index": index,
            "max_amount": format_amount(tier.max_amount_atomic, decimals) if tier.max_amount_atomic else None,
            "approvals_required": tier.approvals_required,
            "approvers": tier.approvers,
            "approval_timeout_seconds": tier.approval_timeout_seconds,
            "timelock_seconds": tier.timelock_seconds,
            "describe": tier.describe(),
        },
        "summary": summary,
    }
