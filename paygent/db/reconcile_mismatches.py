"""The reconciler's balance comparison, read and recorded: what the ledger implies against what the chain holds
per wallet and asset at the checkpoint block, and the mismatches that leaves (`reconcile_mismatches`).

`comparison` gathers the figures and the named causes for `paygent.domain.reconcile.compare_balances`, which
judges them; `record` opens a row (and an audit row) for each cause not open yet and closes the open ones that
are gone, so a mismatch is announced once, however many ticks it lasts, and once more when it resolves.
Everything runs in the caller's tenant transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db.audit import append_audit
from paygent.db.ledger import wallet_account
from paygent.db.reconcile_schema import (
    LEDGER_KINDS,
    MISMATCH,
    PAYMENT,
    reconcile_checkpoints,
    reconcile_mismatches,
    reconcile_movements,
)
from paygent.db.schema import ledger_entries, payments
from paygent.domain.audit_names import AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.payment import PaymentKind
from paygent.domain.reconcile import MISMATCH_OPENED as OPENED
from paygent.domain.reconcile import MISMATCH_RESOLVED as RESOLVED
from paygent.domain.reconcile import BalanceComparison, Cause, MismatchCause, compare_balances


async def ledger_balance(conn: AsyncConnection, wallet_id: uuid.UUID, asset: str) -> int:
    """The balance the ledger implies: the wallet's payment entries plus deposit, gas and self-credit movements."""
    moved = await conn.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(reconcile_movements.c.amount_atomic), 0)).where(
            reconcile_movements.c.wallet_id == wallet_id,
            reconcile_movements.c.asset == asset,
            reconcile_movements.c.kind.in_(LEDGER_KINDS),
        )
    )
    booked = await conn.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(ledger_entries.c.amount_atomic), 0)).where(
            ledger_entries.c.account == wallet_account(wallet_id), ledger_entries.c.asset == asset
        )
    )
    return int(moved or 0) + int(booked or 0)


async def _per_payment(conn: AsyncConnection, query) -> dict[uuid.UUID, int]:
    return {row[0]: int(row[1]) for row in await conn.execute(query)}


async def comparison(conn: AsyncConnection, wallet_id: uuid.UUID, asset: str, *, now: int) -> BalanceComparison | None:
    """Ledger against chain at the asset's checkpoint (None before its first scan). `now` (unix seconds) decides
    whether an x402 payment booked without a transaction could still settle on chain."""
    point = (
        await conn.execute(
            sa.select(reconcile_checkpoints.c.block_number, reconcile_checkpoints.c.chain_balance).where(
                reconcile_checkpoints.c.wallet_id == wallet_id, reconcile_checkpoints.c.asset == asset
            )
        )
    ).first()
    if point is None:
        return None
    block = int(point.block_number)
    account = wallet_account(wallet_id)
    entry, moved = ledger_entries.alias("entry"), reconcile_movements.alias("moved")
    paid_here = sa.and_(moved.c.wallet_id == wallet_id, moved.c.asset == asset, moved.c.kind == PAYMENT)
    # Only the payments where ledger and chain disagree are read: a tick costs what is unmatched, not the history.
    booked_only = await _per_payment(
        conn,
        sa.select(entry.c.payment_id, sa.func.sum(entry.c.amount_atomic))
        .where(
            entry.c.account == account,
            entry.c.asset == asset,
            ~sa.exists().where(paid_here, moved.c.payment_id == entry.c.payment_id),
        )
        .group_by(entry.c.payment_id),
    )
    chain_only = await _per_payment(
        conn,
        sa.select(moved.c.payment_id, sa.func.sum(moved.c.amount_atomic))
        .where(
            paid_here,
            ~sa.exists().where(entry.c.account == account, entry.c.payment_id == moved.c.payment_id),
        )
        .group_by(moved.c.payment_id),
    )
    in_flight = sum(chain_only.values())  # on chain; its workflow books it next
    named: list[Cause] = []
    if booked_only:
        rows = await conn.execute(
            sa.select(payments.c.id, payments.c.kind, payments.c.block_number, payments.c.details).where(
                payments.c.id.in_(list(booked_only))
            )
        )
        for row in rows:
            share = -booked_only[row.id]  # booked out of the ledger, not (yet) out of the chain at `block`
            if _may_still_land(row, block, now):
                in_flight += share
            else:
                named.append(
                    Cause(MismatchCause.BOOKED_NOT_ON_CHAIN, f"payment:{row.id}", share, payment_id=str(row.id))
                )
    for m in await conn.execute(
        sa.select(reconcile_movements).where(
            reconcile_movements.c.wallet_id == wallet_id,
            reconcile_movements.c.asset == asset,
            reconcile_movements.c.kind == MISMATCH,
        )
    ):
        cause = MismatchCause.TRANSFER_OUT_WITHOUT_PAYMENT if m.tx_hash else MismatchCause.UNEXPLAINED_DECREASE
        named.append(
            Cause(
                cause,
                f"movement:{m.id}",
                int(m.amount_atomic),
                movement_id=m.id,
                tx_hash=m.tx_hash,
                counterparty=m.counterparty,
            )
        )
    return compare_balances(
        asset=asset,
        block_number=block,
        ledger=await ledger_balance(conn, wallet_id, asset),
        chain=int(point.chain_balance),
        in_flight=in_flight,
        named=named,
    )


def _may_still_land(payment, block: int, now: int) -> bool:
    """A booked payment the scan has not seen: landed after the checkpoint, or an x402 authorization the server
    may still settle (until its validBefore)."""
    if payment.block_number is not None:
        return int(payment.block_number) > block
    signed = (payment.details or {}).get("signed") or {}
    return payment.kind == PaymentKind.x402 and now < int(signed.get("valid_before") or 0)


# Causes the comparison does not find (they are opened by paygent/db/finality.py) and never closes: an admin does
OPERATOR_RESOLVES = frozenset({str(MismatchCause.REORGED_OUT)})


@dataclass(frozen=True)
class Change:
    """A mismatch opened or resolved by `record`: audited already; the caller publishes it."""

    action: str  # OPENED or RESOLVED
    mismatch_id: int
    data: dict


async def record(
    conn: AsyncConnection, tenant_id: uuid.UUID, wallet_id: uuid.UUID, found: BalanceComparison
) -> list[Change]:
    """Open a row for each cause that is not open yet, resolve the open ones the comparison no longer finds."""
    open_rows = {
        row.cause_key: row
        for row in await conn.execute(
            sa.select(reconcile_mismatches)
            .where(
                reconcile_mismatches.c.wallet_id == wallet_id,
                reconcile_mismatches.c.asset == found.asset,
                reconcile_mismatches.c.resolved_at.is_(None),
            )
            .with_for_update()
        )
    }
    figures = {
        "wallet_id": str(wallet_id),
        "asset": found.asset,
        "block_number": found.block_number,
        "ledger_balance_atomic": str(found.ledger),
        "chain_balance_atomic": str(found.chain),
        "difference_atomic": str(found.difference),
    }
    changes: list[Change] = []
    for key, row in open_rows.items():
        if any(c.key == key for c in found.causes) or row.cause in OPERATOR_RESOLVES:
            continue
        await conn.execute(
            reconcile_mismatches.update()
            .where(reconcile_mismatches.c.id == row.id)
            .values(resolved_at=sa.func.now(), resolved_block=found.block_number)
        )
        data = {**figures, "mismatch_id": row.id, "cause": row.cause, "amount_atomic": str(int(row.amount_atomic))}
        changes.append(await _audited(conn, tenant_id, wallet_id, RESOLVED, row.id, data))
    for cause in found.causes:
        if cause.key in open_rows:
            continue
        columns = {
            "asset": found.asset,
            "cause": str(cause.cause),
            "cause_key": cause.key,
            "amount_atomic": cause.amount_atomic,
            "block_number": found.block_number,
            "ledger_balance": found.ledger,
            "chain_balance": found.chain,
            "movement_id": cause.movement_id,
            "payment_id": uuid.UUID(cause.payment_id) if cause.payment_id else None,
            "tx_hash": cause.tx_hash,
            "counterparty": cause.counterparty,
        }
        data = {
            **figures,
            "mismatch_id": None,
            "cause": str(cause.cause),
            "amount_atomic": str(cause.amount_atomic),
            **{k: v for k in ("movement_id", "payment_id", "tx_hash", "counterparty") if (v := getattr(cause, k))},
        }
        if (opened := await open_mismatch(conn, tenant_id, wallet_id, columns, data)) is not None:
            changes.append(opened)
    return changes


async def open_mismatch(
    conn: AsyncConnection, tenant_id: uuid.UUID, wallet_id: uuid.UUID, columns: dict[str, Any], data: dict[str, Any]
) -> Change | None:
    """Open one mismatch and audit it (`reconciliation.mismatch`, by the reconciler), whoever found it: the
    comparison (`record`) or a payment reorged out (paygent/db/finality.py `reverse`). `columns` are the row's
    own (asset, cause, cause_key, amounts, ...); `data` is the audit entry's, its `mismatch_id` set to the new
    row's id. None when a mismatch with the same cause is open already: nothing is written, so each is opened
    and announced once."""
    mismatch_id = await conn.scalar(
        pg_insert(reconcile_mismatches)
        .values(tenant_id=tenant_id, wallet_id=wallet_id, **columns)
        .on_conflict_do_nothing()
        .returning(reconcile_mismatches.c.id)
    )
    if mismatch_id is None:
        return None
    return await _audited(conn, tenant_id, wallet_id, OPENED, mismatch_id, {**data, "mismatch_id": mismatch_id})


async def _audited(conn, tenant_id: uuid.UUID, wallet_id: uuid.UUID, action: str, mismatch_id: int, data) -> Change:
    await append_audit(
        conn,
        tenant_id=tenant_id,
        actor="reconciler",
        channel=Channel.system,
        action=action,
        subject_type=AuditSubject.wallet,
        subject_id=str(wallet_id),
        data=data,
    )
    return Change(action=action, mismatch_id=mismatch_id, data=data)


async def listed(conn: AsyncConnection, wallet_id: uuid.UUID, *, resolved: bool) -> list[dict]:
    """The wallet's open (or resolved) mismatches, oldest first, as the reconciliation view shows them."""
    done = reconcile_mismatches.c.resolved_at
    rows = await conn.execute(
        sa.select(reconcile_mismatches)
        .where(reconcile_mismatches.c.wallet_id == wallet_id, done.is_not(None) if resolved else done.is_(None))
        .order_by(reconcile_mismatches.c.block_number, reconcile_mismatches.c.id)
    )
    return [
        {
            "id": m.id,
            "asset": m.asset,
            "cause": m.cause,
            "block_number": int(m.block_number),
            "amount_atomic": str(int(m.amount_atomic)),
            "ledger_balance_atomic": str(int(m.ledger_balance)),
            "chain_balance_atomic": str(int(m.chain_balance)),
            "tx_hash": m.tx_hash,
            "counterparty": m.counterparty,
            "payment_id": str(m.payment_id) if m.payment_id else None,
            "found_at": m.created_at.isoformat(),
            **(
                {
                    "resolved_at": m.resolved_at.isoformat(),
                    "resolved_block": m.resolved_block,
                    "resolved_by": m.resolved_by or "reconciler",
                    "resolution": m.resolution,
                }
                if resolved
                else {}
            ),
        }
        for m in rows
    ]
