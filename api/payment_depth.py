"""How deep a `submitted` payment's transaction is: what GET /v1/payments/{id} says while it waits for its depth.

The payment confirms once its transaction is `PAYGENT_CONFIRMATIONS` blocks deep (the head counts as 1); until
then the answer says how many it has (0: not mined yet), read from the node for each of its signed attempts
(a replacement may be the one that landed). A node that does not answer gives `null`, never an error.
"""

from __future__ import annotations

import sqlalchemy as sa

from api.deps import Deps
from paygent.chain.resend import first_landed
from paygent.db.schema import payment_transactions
from paygent.db.tenancy import tenant_transaction
from paygent.domain.payment import PaymentStatus


async def depth_view(d: Deps, tenant_id, row) -> dict:
    """`confirmations` (int, or None when the node is away) and `confirmations_required`, for a submitted payment."""
    if row["status"] != PaymentStatus.submitted:
        return {}
    async with tenant_transaction(d.engine, tenant_id) as conn:
        attempts = (
            (
                await conn.execute(
                    sa.select(payment_transactions.c.tx_hash)
                    .where(payment_transactions.c.payment_id == row["id"])
                    .order_by(payment_transactions.c.created_at)
                )
            )
            .mappings()
            .all()
        )
    have: int | None
    try:
        _, receipt = await first_landed(d.w3, attempts)
        have = 0 if receipt is None else max(int(await d.w3.eth.block_number) - int(receipt["blockNumber"]) + 1, 0)
    except Exception:  # the node is away: say so with null rather than fail the read
        have = None
    return {"confirmations": have, "confirmations_required": d.settings.confirmations_for(int(row["chain_id"]))}
