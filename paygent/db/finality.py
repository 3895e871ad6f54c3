"""Finality writes: a booked payment whose transaction a reorg deeper than the depth touched.

`booked_recent` lists what to check (the caller reads the chain and asks `paygent.domain.finality`); then
`mark_reorged` (left the chain, can still land: audited once), `mark_reincluded` (landed again: the new block),
or `reverse` (can never land: compensating ledger entries, status `reorged_out`, the reservation released, an
audit row and a mismatch that stays open until an admin resolves it with `resolve_mismatch`). `rewind` moves a
wallet's reconcile checkpoints back below a reorg so the scan reads the new chain. All in the caller's tenant
transaction; each write happens once however often it is called.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db import reservations as res
from paygent.db.audit import append_audit
from paygent.db.ledger import wallet_account
from paygent.db.reconcile_mismatches import ledger_balance, open_mismatch
from paygent.db.reconcile_schema import reconcile_checkpoints, reconcile_mismatches, reconcile_movements
from paygent.db.schema import ledger_entries, payment_transactions, payments, wallets
from paygent.domain.audit_names import AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.payment import PaymentStatus
from paygent.domain.reconcile import MISMATCH_RESOLVED, MismatchCause

REORGED = "reorged"  # payments.details key: the reorg seen, and (once landed again) where it landed
ACTION_REORGED, ACTION_REINCLUDED, ACTION_REORGED_OUT = "payment.reorged", "payment.reincluded", "payment.reorged_out"
REVERSAL = "reversal"  # ledger_entries.entry of a compensating pair


def reorg_pending(payment: dict) -> bool:
    """A reorg took the payment's transaction out of the chain and it has not landed again yet."""
    seen = (payment.get("details") or {}).get(REORGED) or {}
    return bool(seen) and seen.get("to_block") is None and not seen.get("reversed")


def reorg_key(payment_id) -> str:
    return f"{MismatchCause.REORGED_OUT}:payment:{payment_id}"


async def booked_recent(
    conn: AsyncConnection, *, since_block: int | None, wallet_id: uuid.UUID | None = None
) -> list[dict]:
    """Confirmed payments booked at `since_block` or later (None: none of them), and those a reorg left waiting
    to land again, each with the wallet's address and the payment's signed attempts (oldest first)."""
    # `?` with the key as a literal, so the planner can use the partial index payments_reorg_pending (0022);
    # ->> (astext): a JSON null reads as SQL NULL
    pending = payments.c.details.op("?", is_comparison=True)(sa.literal_column(f"'{REORGED}'")) & payments.c.details[
        REORGED
    ]["to_block"].astext.is_(None)
    query = (
        sa.select(payments, wallets.c.address.label("wallet_address"))
        .join(wallets, wallets.c.id == payments.c.wallet_id)
        .where(
            payments.c.status == PaymentStatus.confirmed,
            pending if since_block is None else sa.or_(payments.c.block_number >= since_block, pending),
        )
        .order_by(payments.c.block_number)
    )
    if wallet_id is not None:
        query = query.where(payments.c.wallet_id == wallet_id)
    rows = [dict(r) for r in (await conn.execute(query)).mappings()]
    if not rows:
        return rows
    attempts: dict[Any, list] = {}
    for a in (
        await conn.execute(
            sa.select(payment_transactions)
            .where(payment_transactions.c.payment_id.in_([r["id"] for r in rows]))
            .order_by(payment_transactions.c.created_at)
        )
    ).mappings():
        attempts.setdefault(a["payment_id"], []).append(dict(a))
    for r in rows:
        r["attempts"] = attempts.get(r["id"], [])
    return rows


async def reorg_pending_tenants(conn: AsyncConnection) -> list[uuid.UUID]:
    """Before any tenant is chosen (a SECURITY DEFINER function, 0022): the tenants with payments a reorg left
    waiting to land again."""
    return list((await conn.scalars(sa.select(sa.func.paygent_reorg_pending_tenants()))).all())


async def holder_of_nonce(conn: AsyncConnection, wallet_address: str, nonce: int) -> dict | None:
    """The payment (with its attempts) whose transactions used `nonce` from this wallet, if Paygent signed one."""
    row = (
        (
            await conn.execute(
                sa.select(payments, wallets.c.address.label("wallet_address"))
                .join(wallets, wallets.c.id == payments.c.wallet_id)
                .join(payment_transactions, payment_transactions.c.payment_id == payments.c.id)
                .where(
                    sa.func.lower(wallets.c.address) == wallet_address.lower(), payment_transactions.c.nonce == nonce
                )
                .limit(1)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    found = dict(row)
    found["attempts"] = [
        dict(a)
        for a in (
            await conn.execute(
                sa.select(payment_transactions)
                .where(payment_transactions.c.payment_id == found["id"])
                .order_by(payment_transactions.c.created_at)
            )
        ).mappings()
    ]
    return found


async def _lock(conn: AsyncConnection, payment_id) -> Any:
    return (
        await conn.execute(
            sa.select(payments.c.status, payments.c.details, payments.c.block_number, payments.c.tx_hash)
            .where(payments.c.id == payment_id)
            .with_for_update()
        )
    ).first()


async def mark_reorged(conn: AsyncConnection, payment: dict, *, reason: str) -> bool:
    """The payment's transaction left the chain and can still land (sent again): recorded once per reorg."""
    row = await _lock(conn, payment["id"])
    if row is None or row.status != PaymentStatus.confirmed:
        return False
    seen = (row.details or {}).get(REORGED)
    if seen and seen.get("to_block") is None:
        return False  # this reorg is recorded already
    details = {
        **(row.details or {}),
        REORGED: {"from_block": row.block_number, "tx_hash": row.tx_hash, "to_block": None},
    }
    await conn.execute(payments.update().where(payments.c.id == payment["id"]).values(details=details))
    await _audit(
        conn, payment, ACTION_REORGED, {"reason": reason, "from_block": row.block_number, "tx_hash": row.tx_hash}
    )
    return True


async def mark_reincluded(conn: AsyncConnection, payment: dict, *, tx_hash: str, block_number: int) -> bool:
    """Its transaction (or another attempt of it) is in the chain at another block: record the new block."""
    row = await _lock(conn, payment["id"])
    if row is None or row.status != PaymentStatus.confirmed:
        return False
    seen = (row.details or {}).get(REORGED)
    if row.block_number == block_number and not (seen and seen.get("to_block") is None):
        return False  # where it was booked, and no reorg of it waits: nothing moved
    seen = seen or {"from_block": row.block_number}
    details = {**(row.details or {}), REORGED: {**seen, "tx_hash": tx_hash, "to_block": block_number}}
    await conn.execute(
        payments.update()
        .where(payments.c.id == payment["id"])
        .values(tx_hash=tx_hash, block_number=block_number, details=details, updated_at=sa.func.now())
    )
    await conn.execute(
        ledger_entries.update().where(ledger_entries.c.payment_id == payment["id"]).values(tx_hash=tx_hash)
    )
    await _audit(
        conn,
        payment,
        ACTION_REINCLUDED,
        {"from_block": seen.get("from_block"), "block_number": block_number, "tx_hash": tx_hash},
    )
    return True


async def reverse(conn: AsyncConnection, payment: dict, *, reason: str, block_number: int) -> dict | None:
    """It can never land: compensating entries, `reorged_out`, the reservation released, audit, an open mismatch.
    Returns the mismatch's fields (for the webhook event), or None when it was reversed already."""
    row = await _lock(conn, payment["id"])
    if row is None or row.status != PaymentStatus.confirmed:
        return None
    amount, wallet_id = int(payment["amount_atomic"]), payment["wallet_id"]
    await conn.execute(
        pg_insert(ledger_entries)
        .values(
            [
                {
                    "tenant_id": payment["tenant_id"],
                    "payment_id": payment["id"],
                    "account": account,
                    "asset": payment["asset"],
                    "amount_atomic": share,
                    "tx_hash": row.tx_hash,
                    "entry": REVERSAL,
                }
                for account, share in (
                    (wallet_account(wallet_id), amount),
                    (f"external:{payment['to_address']}", -amount),
                )
            ]
        )
        .on_conflict_do_nothing(constraint="ledger_one_entry_per_account")
    )
    details = {**(row.details or {}), REORGED: {**((row.details or {}).get(REORGED) or {}), "reversed": True}}
    await conn.execute(
        payments.update()
        .where(payments.c.id == payment["id"])
        .values(status=PaymentStatus.reorged_out, failure_reason=reason, details=details, updated_at=sa.func.now())
    )
    await conn.execute(
        res.reservations.update()
        .where(res.reservations.c.payment_id == payment["id"], res.reservations.c.status == res.COMMITTED)
        .values(status=res.RELEASED, settled_at=sa.func.now())
    )
    data = {
        "reason": reason,
        "status": PaymentStatus.reorged_out,
        "tx_hash": row.tx_hash,
        "booked_block": row.block_number,
        "amount_atomic": str(amount),
        "reversal": "compensating ledger entries written",
    }
    await _audit(conn, payment, ACTION_REORGED_OUT, data)
    ledger = await ledger_balance(conn, wallet_id, payment["asset"])
    columns = {
        "asset": payment["asset"],
        "cause": str(MismatchCause.REORGED_OUT),
        "cause_key": reorg_key(payment["id"]),
        "amount_atomic": amount,
        "block_number": block_number,
        "ledger_balance": ledger,
        "chain_balance": ledger,  # the reversal made them agree; the mismatch is the payment that did not happen
        "payment_id": payment["id"],
        "tx_hash": row.tx_hash,
        "counterparty": payment["to_address"],
    }
    found = {
        "wallet_id": str(wallet_id),
        "asset": payment["asset"],
        "mismatch_id": None,  # None: one is open for this payment already (nothing opened, nothing announced)
        "cause": str(MismatchCause.REORGED_OUT),
        "amount_atomic": str(amount),
        "payment_id": str(payment["id"]),
        "tx_hash": row.tx_hash,
        "block_number": block_number,
    }
    opened = await open_mismatch(conn, payment["tenant_id"], wallet_id, columns, found)
    return opened.data if opened is not None else found


async def _audit(conn: AsyncConnection, payment: dict, action: str, data: dict) -> None:
    await append_audit(
        conn,
        tenant_id=payment["tenant_id"],
        actor="chain follower" if action != ACTION_REORGED_OUT else "reconciler",
        channel=Channel.system,
        action=action,
        subject_type=AuditSubject.payment,
        subject_id=str(payment["id"]),
        data=data,
    )


async def rewind(conn: AsyncConnection, wallet_id: uuid.UUID, *, to_block: int, balances: dict[str, int]) -> int:
    """Move the wallet's checkpoints back to `to_block` (balances read there) and forget what was seen above it,
    so the next scan reads the chain as it is now. Returns how many movements were forgotten."""
    above = sa.select(reconcile_movements.c.id).where(
        reconcile_movements.c.wallet_id == wallet_id, reconcile_movements.c.block_number > to_block
    )
    await conn.execute(
        reconcile_mismatches.update().where(reconcile_mismatches.c.movement_id.in_(above)).values(movement_id=None)
    )
    gone = await conn.execute(
        reconcile_movements.delete().where(
            reconcile_movements.c.wallet_id == wallet_id, reconcile_movements.c.block_number > to_block
        )
    )
    for asset, balance in balances.items():
        await conn.execute(
            reconcile_checkpoints.update()
            .where(reconcile_checkpoints.c.wallet_id == wallet_id, reconcile_checkpoints.c.asset == asset)
            .values(block_number=to_block, chain_balance=balance, block_hash=None, updated_at=sa.func.now())
        )
    return int(gone.rowcount or 0)


async def resolve_mismatch(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    wallet_id: uuid.UUID,
    mismatch_id: int,
    *,
    actor: str,
    reason: str,
    channel: Channel,
) -> dict | None:
    """An operator closes an open mismatch with a reason (audited). None: no such mismatch on this wallet;
    {"resolved_at": ...} with `already` True when it was resolved before."""
    row = (
        await conn.execute(
            sa.select(reconcile_mismatches)
            .where(reconcile_mismatches.c.id == mismatch_id, reconcile_mismatches.c.wallet_id == wallet_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        return None
    if row.resolved_at is not None:
        return {"already": True}
    done = await conn.scalar(
        reconcile_mismatches.update()
        .where(reconcile_mismatches.c.id == mismatch_id)
        .values(resolved_at=sa.func.now(), resolved_by=actor, resolution=reason)
        .returning(reconcile_mismatches.c.resolved_at)
    )
    data = {
        "wallet_id": str(wallet_id),
        "mismatch_id": mismatch_id,
        "cause": row.cause,
        "amount_atomic": str(int(row.amount_atomic)),
        "payment_id": str(row.payment_id) if row.payment_id else None,
        "reason": reason,
        "resolved_by": actor,
    }
    await append_audit(
        conn,
        tenant_id=tenant_id,
        actor=actor,
        channel=channel,
        action=MISMATCH_RESOLVED,
        subject_type=AuditSubject.wallet,
        subject_id=str(wallet_id),
        data=data,
    )
    return {"already": False, "resolved_at": done.isoformat(), **data}


async def checkpoint_hash(conn: AsyncConnection, wallet_id: uuid.UUID, asset: str) -> str | None:
    return await conn.scalar(
        sa.select(reconcile_checkpoints.c.block_hash).where(
            reconcile_checkpoints.c.wallet_id == wallet_id, reconcile_checkpoints.c.asset == asset
        )
    )


async def stamp_checkpoints(
    conn: AsyncConnection, wallet_id: uuid.UUID, block_number: int, block_hash: str | None
) -> None:
    """Note the hash of the block the wallet's checkpoints stand at (a later tick compares it with the chain's)."""
    await conn.execute(
        reconcile_checkpoints.update()
        .where(reconcile_checkpoints.c.wallet_id == wallet_id, reconcile_checkpoints.c.block_number == block_number)
        .values(block_hash=block_hash)
    )
