"""GET /v1/wallets/{id}/reconciliation: what the reconciler knows about a wallet (admins and auditors).

Per asset: the last checkpoint block, the chain balance there and the ledger's balance (payments' ledger
entries plus deposits and gas seen on chain); x402 authorizations still holding a reservation; payments whose
receipt wait gave up; and every mismatch (funds that left the wallet with no payment to explain them).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends

from api.authz import Role, allow
from api.deps import Deps, deps
from api.errors import ApiError
from paygent.db import reconcile
from paygent.db.accounts import Principal, get_wallet
from paygent.db.tenancy import tenant_transaction

router = APIRouter(prefix="/v1/wallets", tags=["reconciliation"])


@router.get("/{wallet_id}/reconciliation")
async def wallet_reconciliation(
    wallet_id: str, who: Principal = Depends(allow(Role.admin, Role.auditor)), d: Deps = Depends(deps)
):
    try:
        wid = uuid.UUID(wallet_id)
    except ValueError:
        raise ApiError(404, "not_found", "wallet not found") from None
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        wallet = await get_wallet(conn, who.tenant_id, wid)
        if wallet is None:  # another tenant's wallet looks exactly like a missing one
            raise ApiError(404, "not_found", "wallet not found")
        found = await reconcile.view(conn, wid)
    return {"wallet_id": str(wid), "address": wallet.address, "confirmations": d.settings.confirmations, **found}
