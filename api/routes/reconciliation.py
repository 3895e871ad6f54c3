"""The reconciliation of a wallet: what the reconciler knows (admins and auditors), and an operator's resolution
of a mismatch (admins).

GET: per asset, the last checkpoint block, the chain balance there and the ledger's balance (payments' ledger
entries plus deposits and gas seen on chain); x402 authorizations still holding a reservation; payments whose
receipt wait gave up; open mismatches (funds that left the wallet with no payment to explain them, payments a
deep reorg reversed) and resolved ones (by the reconciler when the difference went, or by an admin).

POST .../mismatches/{mismatch_id}/resolve: an admin closes an open mismatch with a reason (audited,
`reconciliation.mismatch_resolved`). A `reorged_out` payment's mismatch is closed only this way.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.approval_http import channel
from api.authz import Role, allow
from api.deps import Deps, deps
from api.errors import ApiError
from paygent.db import finality, reconcile
from paygent.db.accounts import Principal, get_wallet
from paygent.db.tenancy import tenant_transaction
from paygent.domain.channels import Channel
from paygent.domain.text import SafeText

router = APIRouter(prefix="/v1/wallets", tags=["reconciliation"])


def _wallet_id(wallet_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(wallet_id)
    except ValueError:
        raise ApiError(404, "not_found", "wallet not found") from None


@router.get("/{wallet_id}/reconciliation")
async def wallet_reconciliation(
    wallet_id: str, who: Principal = Depends(allow(Role.admin, Role.auditor)), d: Deps = Depends(deps)
):
    wid = _wallet_id(wallet_id)
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        wallet = await get_wallet(conn, who.tenant_id, wid)
        if wallet is None:  # another tenant's wallet looks exactly like a missing one
            raise ApiError(404, "not_found", "wallet not found")
        found = await reconcile.view(conn, wid)
    return {
        "wallet_id": str(wid),
        "address": wallet.address,
        "confirmations": d.settings.confirmations_for(d.settings.chain_id),
        **found,
    }


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: SafeText = Field(min_length=1, max_length=500, description="why the mismatch is closed (audited)")


@router.post("/{wallet_id}/reconciliation/mismatches/{mismatch_id}/resolve")
async def resolve_mismatch(
    wallet_id: str,
    mismatch_id: str,
    body: ResolveBody,
    who: Principal = Depends(allow(Role.admin)),
    via: Channel = Depends(channel),
    d: Deps = Depends(deps),
):
    wid = _wallet_id(wallet_id)
    if not mismatch_id.isdigit() or len(mismatch_id) > 18:
        raise ApiError(404, "not_found", "mismatch not found")
    async with tenant_transaction(d.engine, who.tenant_id) as conn:
        if await get_wallet(conn, who.tenant_id, wid) is None:
            raise ApiError(404, "not_found", "wallet not found")
        done = await finality.resolve_mismatch(
            conn, who.tenant_id, wid, int(mismatch_id), actor=who.actor, reason=body.reason.strip(), channel=via
        )
    if done is None:
        raise ApiError(404, "not_found", "mismatch not found")
    if done["already"]:
        raise ApiError(409, "already_resolved", "the mismatch is resolved already", "mismatch_id")
    return {k: v for k, v in done.items() if k != "already"}
