"""The reconciler's reads and writes, each inside the caller's tenant transaction (`tenant_transaction`).

Writes are idempotent so any block range can be scanned again after a crash: movements are unique per
(wallet, asset, block, tx, log, kind), a payment is confirmed once (its ledger entries are unique per account),
and an audit row is written only by the call that changed something.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paygent.db import reconcile_mismatches as mismatches
from paygent.db import reservations as res
from paygent.db.audit import append_audit
from paygent.db.ledger import write_payment_entries
from paygent.db.reconcile_schema import PAYMENT, reconcile_checkpoints, reconcile_movements
from paygent.db.schema import audit_log, ledger_entries, payment_transactions, payments, swap_transactions, wallets
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.payment import PAYMENT_TERMINAL, RECEIPT_WAIT_GAVE_UP, PaymentStatus

TRANSACTION_MATCHED = "payment.transaction_matched"
# statuses that said "nothing was paid"
# reorged_out is not "closed unpaid": it was paid, then reversed with a compensating entry an operator resolves
CLOSED_UNPAID = tuple(sorted(PAYMENT_TERMINAL - {PaymentStatus.confirmed, PaymentStatus.reorged_out}))


async def tenant_ids(conn: AsyncConnection) -> list[uuid.UUID]:
    """Every tenant's id, before any tenant is chosen (a SECURITY DEFINER function, migration 0008)."""
    return list((await conn.scalars(sa.select(sa.func.paygent_tenant_ids()))).all())


async def tenant_wallets(conn: AsyncConnection, tenant_id: uuid.UUID) -> list:
    return list(
        (
            await conn.execute(
                sa.select(wallets.c.id, wallets.c.address)
                .where(wallets.c.tenant_id == tenant_id)
                .order_by(wallets.c.created_at)
            )
        ).all()
    )


async def checkpoint(conn: AsyncConnection, wallet_id: uuid.UUID, asset: str) -> tuple[int, int]:
    """(last block scanned, chain balance there); (-1, 0) before the first scan."""
    row = (
        await conn.execute(
            sa.select(reconcile_checkpoints.c.block_number, reconcile_checkpoints.c.chain_balance).where(
                reconcile_checkpoints.c.wallet_id == wallet_id, reconcile_checkpoints.c.asset == asset
            )
        )
    ).first()
    return (int(row.block_number), int(row.chain_balance)) if row else (-1, 0)


async def save_checkpoint(
    conn: AsyncConnection,
    *,
    tenant_id: uuid.UUID,
    wallet_id: uuid.UUID,
    asset: str,
    block_number: int,
    chain_balance: int,
) -> None:
    values = {
        "tenant_id": tenant_id,
        "wallet_id": wallet_id,
        "asset": asset,
        "block_number": block_number,
        "chain_balance": chain_balance,
    }
    stmt = pg_insert(reconcile_checkpoints).values(values)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["wallet_id", "asset"],
            set_={"block_number": block_number, "chain_balance": chain_balance, "updated_at": sa.func.now()},
            where=reconcile_checkpoints.c.block_number < block_number,
        )
    )  # a checkpoint never moves back


async def record_movement(
    conn: AsyncConnection,
    *,
    tenant_id: uuid.UUID,
    wallet_id: uuid.UUID,
    asset: str,
    block_number: int,
    tx_hash: str | None,
    log_index: int | None,
    kind: str,
    amount_atomic: int,
    counterparty: str | None = None,
    payment_id: uuid.UUID | None = None,
    details: dict | None = None,
) -> int | None:
    """The new row's id, or None when this movement was recorded by an earlier scan of the same range."""
    return await conn.scalar(
        pg_insert(reconcile_movements)
        .values(
            tenant_id=tenant_id,
            wallet_id=wallet_id,
            asset=asset,
            block_number=block_number,
            tx_hash=tx_hash,
            log_index=log_index,
            kind=kind,
            amount_atomic=amount_atomic,
            counterparty=counterparty,
            payment_id=payment_id,
            details=details or {},
        )
        .on_conflict_do_nothing(constraint="reconcile_movement_once")
        .returning(reconcile_movements.c.id)
    )


async def payment_by_tx(conn: AsyncConnection, wallet_id: uuid.UUID, tx_hash: str):
    """The wallet's payment executed by this transaction (any of its fee-bumped attempts)."""
    pid = await conn.scalar(
        sa.select(payment_transactions.c.payment_id).where(
            sa.func.lower(payment_transactions.c.tx_hash) == tx_hash.lower()
        )
    )
    query = sa.select(payments).where(payments.c.wallet_id == wallet_id)
    query = (
        query.where(payments.c.id == pid) if pid else query.where(sa.func.lower(payments.c.tx_hash) == tx_hash.lower())
    )
    return (await conn.execute(query)).mappings().first()


async def payment_by_authorization(conn: AsyncConnection, wallet_id: uuid.UUID, nonce: str):
    """The wallet's x402 payment whose signed EIP-3009 authorization has this nonce."""
    return (
        (
            await conn.execute(
                sa.select(payments).where(
                    payments.c.wallet_id == wallet_id,
                    payments.c.kind == "x402",
                    sa.func.lower(payments.c.details["signed"]["authorization_nonce"].astext) == nonce.lower(),
                )
            )
        )
        .mappings()
        .first()
    )


async def held_authorizations(conn: AsyncConnection, wallet_id: uuid.UUID) -> list:
    """x402 payments closed as not paid whose signed authorization still holds their reservation."""
    return list(
        (
            await conn.execute(
                sa.select(payments)
                .join(res.reservations, res.reservations.c.payment_id == payments.c.id)
                .where(
                    payments.c.wallet_id == wallet_id,
                    payments.c.kind == "x402",
                    payments.c.status.in_(CLOSED_UNPAID),
                    payments.c.details.has_key("signed"),
                    res.reservations.c.status == res.RESERVED,
                )
                .order_by(payments.c.created_at)
            )
        )
        .mappings()
        .all()
    )


async def receipts_given_up(conn: AsyncConnection, wallet_id: uuid.UUID) -> list:
    """Payments left `submitted` by a receipt wait that gave up, with their signed attempts."""
    rows = (
        (
            await conn.execute(
                sa.select(payments)
                .where(
                    payments.c.wallet_id == wallet_id,
                    payments.c.status == PaymentStatus.submitted,
                    payments.c.details.has_key(RECEIPT_WAIT_GAVE_UP),
                )
                .order_by(payments.c.created_at)
            )
        )
        .mappings()
        .all()
    )
    out = []
    for row in rows:
        attempts = (
            (
                await conn.execute(
                    sa.select(payment_transactions)
                    .where(payment_transactions.c.payment_id == row["id"])
                    .order_by(payment_transactions.c.created_at)
                )
            )
            .mappings()
            .all()
        )
        out.append((row, list(attempts)))
    return out


async def paid_but_open(conn: AsyncConnection, wallet_id: uuid.UUID) -> list:
    """Payments a scan already saw executed on chain (a `payment` movement) that are still recorded as closed
    unpaid or left `submitted`: the scan passed their block while their workflow was still deciding."""
    return list(
        (
            await conn.execute(
                sa.select(
                    payments,
                    reconcile_movements.c.tx_hash.label("moved_tx"),
                    reconcile_movements.c.block_number.label("moved_block"),
                )
                .join(reconcile_movements, reconcile_movements.c.payment_id == payments.c.id)
                .where(
                    reconcile_movements.c.wallet_id == wallet_id,
                    reconcile_movements.c.kind == PAYMENT,
                    sa.or_(
                        payments.c.status.in_(CLOSED_UNPAID),
                        sa.and_(
                            payments.c.status == PaymentStatus.submitted,
                            payments.c.details.has_key(RECEIPT_WAIT_GAVE_UP),
                        ),
                    ),
                )
            )
        )
        .mappings()
        .all()
    )


async def wallet_tx_hashes(conn: AsyncConnection, wallet_id: uuid.UUID, from_block: int, to_block: int) -> list[str]:
    """Transactions the wallet itself signed that may have landed in the range (they spent its native gas): its
    payments' transactions, its swaps' (approve, swap, allowance reset) of swaps open or changed within the last
    day, and the no-ops the chain follower sent to fill a lost nonce (audited `wallet.nonce_filled`) within the
    last day (the caller keeps only receipts in the range)."""
    transfers = (
        await conn.scalars(
            sa.select(payment_transactions.c.tx_hash)
            .join(payments, payments.c.id == payment_transactions.c.payment_id)
            .where(
                payments.c.wallet_id == wallet_id,
                sa.or_(
                    payments.c.status.in_([PaymentStatus.signing, PaymentStatus.submitted]),
                    payments.c.block_number.between(from_block, to_block),
                    payments.c.details.has_key(RECEIPT_WAIT_GAVE_UP),
                ),
            )
        )
    ).all()
    swaps = (
        await conn.scalars(
            sa.select(swap_transactions.c.tx_hash)
            .join(payments, payments.c.id == swap_transactions.c.payment_id)
            .where(
                payments.c.wallet_id == wallet_id,
                sa.or_(
                    payments.c.status.in_([PaymentStatus.signing, PaymentStatus.submitted]),
                    payments.c.updated_at > sa.func.now() - sa.text("interval '1 day'"),
                ),
            )
        )
    ).all()
    noops = (
        await conn.scalars(
            sa.select(audit_log.c.data["tx_hash"].astext).where(
                audit_log.c.subject_type == AuditSubject.wallet,
                audit_log.c.subject_id == str(wallet_id),
                audit_log.c.action == AuditAction.wallet_nonce_filled,
                audit_log.c.at > sa.func.now() - sa.text("interval '1 day'"),
            )
        )
    ).all()
    return list(transfers) + list(swaps) + [h for h in noops if h]


async def confirm_payment(
    conn: AsyncConnection, payment, *, tx_hash: str, block_number: int, source: str
) -> str | None:
    """Confirm a payment the chain shows executed: ledger entries, tx hash, reservation committed (again), audit.

    Returns the audit action written (`payment.settled_late` for a payment that had been closed as not paid,
    `payment.reconciled` for one whose receipt wait gave up, `payment.transaction_matched` for one its workflow
    confirmed without knowing the transaction), or None when there was nothing to change.
    """
    row = (
        await conn.execute(
            sa.select(payments.c.status, payments.c.details, payments.c.tx_hash, payments.c.block_number)
            .where(payments.c.id == payment["id"])
            .with_for_update()
        )
    ).first()
    if row is None:
        return None
    if row.status == PaymentStatus.confirmed:
        return await _match_transaction(conn, payment, row, tx_hash=tx_hash, block_number=block_number, source=source)
    late = row.status in CLOSED_UNPAID
    if not late and RECEIPT_WAIT_GAVE_UP not in (row.details or {}):
        return None  # still in its workflow's hands: the workflow settles it
    details = {
        **(row.details or {}),
        "outcome": "settled_late" if late else (row.details or {}).get("outcome"),
        "reconciled": {
            "tx_hash": tx_hash,
            "block_number": block_number,
            "source": source,
            "previous_status": row.status,
        },
    }
    await conn.execute(
        payments.update()
        .where(payments.c.id == payment["id"])
        .values(
            status=PaymentStatus.confirmed,
            failure_reason=None,
            tx_hash=tx_hash,
            block_number=block_number,
            details=details,
            updated_at=sa.func.now(),
        )
    )
    await conn.execute(
        res.reservations.update()
        .where(
            res.reservations.c.payment_id == payment["id"],
            res.reservations.c.status.in_([res.RESERVED, res.RELEASED]),
        )
        .values(status=res.COMMITTED, settled_at=sa.func.now())
    )
    await write_payment_entries(
        conn,
        tenant_id=payment["tenant_id"],
        payment_id=payment["id"],
        wallet_id=payment["wallet_id"],
        to=payment["to_address"],
        asset=payment["asset"],
        amount_atomic=int(payment["amount_atomic"]),
        tx_hash=tx_hash,
    )
    action = "payment.settled_late" if late else "payment.reconciled"
    await append_audit(
        conn,
        tenant_id=payment["tenant_id"],
        actor="reconciler",
        channel=Channel.system,
        action=action,
        subject_type=AuditSubject.payment,
        subject_id=str(payment["id"]),
        data={
            "status": PaymentStatus.confirmed,
            "previous_status": row.status,
            "tx_hash": tx_hash,
            "block_number": block_number,
            "source": source,
            "amount_atomic": str(int(payment["amount_atomic"])),
        },
    )
    return action


async def _match_transaction(conn: AsyncConnection, payment, row, *, tx_hash: str, block_number: int, source: str):
    """A confirmed payment whose workflow never learnt its transaction (an x402 server that answered without a
    receipt while the chain showed the authorization used): record the transaction the scan matched, on the
    payment and on its ledger entries, which stay as booked (nothing is booked twice)."""
    if row.tx_hash is not None:
        if row.block_number is None:  # an x402 receipt names the transaction, not its block: note the block
            await conn.execute(
                payments.update().where(payments.c.id == payment["id"]).values(block_number=block_number)
            )
        return None
    await conn.execute(
        payments.update()
        .where(payments.c.id == payment["id"])
        .values(
            tx_hash=tx_hash,
            block_number=block_number if row.block_number is None else row.block_number,
            details={
                **(row.details or {}),
                "reconciled": {"tx_hash": tx_hash, "block_number": block_number, "source": source},
            },
            updated_at=sa.func.now(),
        )
    )
    await conn.execute(
        ledger_entries.update()
        .where(ledger_entries.c.payment_id == payment["id"], ledger_entries.c.tx_hash.is_(None))
        .values(tx_hash=tx_hash)
    )
    await append_audit(
        conn,
        tenant_id=payment["tenant_id"],
        actor="reconciler",
        channel=Channel.system,
        action=TRANSACTION_MATCHED,
        subject_type=AuditSubject.payment,
        subject_id=str(payment["id"]),
        data={"tx_hash": tx_hash, "block_number": block_number, "source": source},
    )
    return TRANSACTION_MATCHED


async def close_payment(
    conn: AsyncConnection, payment, *, status: str | None, action: str, reason: str, data: dict[str, Any] | None = None
) -> bool:
    """Release a payment's held reservation (and set `status` when given); False when already done."""
    released = await conn.scalar(
        res.reservations.update()
        .where(
            res.reservations.c.payment_id == payment["id"],
            res.reservations.c.status == res.RESERVED,
        )
        .values(status=res.RELEASED, settled_at=sa.func.now())
        .returning(res.reservations.c.payment_id)
    )
    if released is None:
        return False
    if status is not None:
        await conn.execute(
            payments.update()
            .where(payments.c.id == payment["id"])
            .values(status=status, failure_reason=reason, updated_at=sa.func.now())
        )
    await append_audit(
        conn,
        tenant_id=payment["tenant_id"],
        actor="reconciler",
        channel=Channel.system,
        action=action,
        subject_type=AuditSubject.payment,
        subject_id=str(payment["id"]),
        data={"reason": reason, "reservation": res.RELEASED, **({"status": status} if status else {}), **(data or {})},
    )
    return True


async def view(conn: AsyncConnection, wallet_id: uuid.UUID) -> dict[str, Any]:
    """What GET /v1/wallets/{id}/reconciliation shows (amounts as integer strings of atomic units)."""
    points = (
        (await conn.execute(sa.select(reconcile_checkpoints).where(reconcile_checkpoints.c.wallet_id == wallet_id)))
        .mappings()
        .all()
    )
    assets = []
    for point in sorted(points, key=lambda p: p["asset"]):
        ledger, chain = await mismatches.ledger_balance(conn, wallet_id, point["asset"]), int(point["chain_balance"])
        assets.append(
            {
                "asset": point["asset"],
                "checkpoint_block": int(point["block_number"]),
                "ledger_balance_atomic": str(ledger),
                "chain_balance_atomic": str(chain),
                "difference_atomic": str(chain - ledger),
                "checked_at": point["updated_at"].isoformat(),
            }
        )
    held = await held_authorizations(conn, wallet_id)
    given_up = await receipts_given_up(conn, wallet_id)
    return {
        "assets": assets,
        "open_authorizations": [
            {
                "payment_id": str(p["id"]),
                "status": p["status"],
                "amount_atomic": str(int(p["amount_atomic"])),
                "pay_to": p["to_address"],
                "authorization_nonce": p["details"]["signed"]["authorization_nonce"],
                "valid_before": p["details"]["signed"]["valid_before"],
            }
            for p in held
        ],
        "pending_receipts": [
            {"payment_id": str(p["id"]), "tx_hashes": [a["tx_hash"] for a in attempts]} for p, attempts in given_up
        ],
        "mismatches": await mismatches.listed(conn, wallet_id, resolved=False),
        "resolved_mismatches": await mismatches.listed(conn, wallet_id, resolved=True),
    }
