"""Signing and broadcasting token transfers, exactly once per payment.

The invariant: a payment executes at most once on chain. `sign_transfer` persists the signed bytes (with the
nonce it allocated) in the same database transaction that marks the payment signed; every later attempt, after
a crash or a retry, reads and re-sends those bytes and reconciles by their hash. A transaction that is not
mined in time is replaced by one with the same nonce and fees raised by 12.5% (nodes require at least 10%):
the nonce guarantees that only one of them can ever land, and whichever lands is the execution.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from eth_typing import HexStr
from eth_utils import to_checksum_address
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from web3.types import Wei

from activities.finality import Finality
from activities.payments import record_status_or_fail
from paygent.chain.nonces import allocate_nonce
from paygent.chain.resend import first_landed, send_stored
from paygent.chain.revert import revert_reason
from paygent.chain.rpc import async_web3
from paygent.chain.token import FeeCache, FeeFields, fee_fields, transfer_calldata
from paygent.db import receipt_waits
from paygent.db.accounts import load_signer
from paygent.db.audit import append_audit
from paygent.db.schema import payment_transactions, payments
from paygent.db.tenancy import tenant_scope
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.errors import ErrorType
from paygent.domain.payment import PAYMENT_TERMINAL, RECEIPT_WAIT_GAVE_UP, PaymentRequest, PaymentStatus
from workflows import chain_types as ct
from workflows import payment_types as pt

FEE_BUMP_NUMERATOR, FEE_BUMP_DENOMINATOR = 9, 8  # +12.5%
RESEND_SECONDS = 2.0  # re-send stored bytes (node restart, reorg) at most this often, not on every poll
POLL_BACKOFF, MAX_POLL_SECONDS = 1.5, 2.0
ENSURE_FOLLOWER_SECONDS = 60.0  # a worker checks at most this often that its chain's follower workflow runs


def as_hex(value) -> str:
    text = value.hex() if hasattr(value, "hex") else str(value)
    return text if text.startswith("0x") else "0x" + text


class ChainActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        rpc_url: str,
        master_key: bytes,
        *,
        gas_limit: int,
        confirmations: int,
        replace_after_seconds: float = 60,
        poll_seconds: float = 0.25,
        receipt_wait_seconds: float = 3 * 3600,
        reconcile_interval_seconds: int = 15,
    ) -> None:
        self.engine = engine
        self.w3 = async_web3(rpc_url)
        self._master_key = master_key
        self.gas_limit = gas_limit
        self.confirmations = confirmations
        self.replace_after_seconds = replace_after_seconds
        self.poll_seconds = poll_seconds
        self.receipt_wait_seconds = receipt_wait_seconds
        self.reconcile_interval_seconds = reconcile_interval_seconds
        self._follower_checked: dict[tuple[int, str], float] = {}
        self._fees = FeeCache(self.w3)  # first signings; a replacement reads the market afresh

    def finality(self) -> Finality:
        """Finality checks and nonce-gap filling with this worker's keys (activities/finality.py)."""
        return Finality(self.engine, self.w3, self._master_key)

    async def _payment(self, payment_id: str):
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(payments).where(payments.c.id == uuid.UUID(payment_id))))
                .mappings()
                .first()
            )
        if row is None:
            raise ApplicationError(
                f"payment {payment_id} is not recorded", type=ErrorType.payment_missing, non_retryable=True
            )
        return row

    async def _attempts(self, payment_id: str) -> list:
        async with self.engine.connect() as conn:
            return list(
                (
                    await conn.execute(
                        sa.select(payment_transactions)
                        .where(payment_transactions.c.payment_id == uuid.UUID(payment_id))
                        .order_by(payment_transactions.c.created_at)
                    )
                )
                .mappings()
                .all()
            )

    async def _sign_and_store(
        self, conn: AsyncConnection, req: PaymentRequest, nonce: int, fees: FeeFields, *, action: str
    ) -> tuple[str, bytes]:
        """Sign with the wallet's key and persist the signed bytes, in the caller's transaction: (hash, bytes)."""
        signer = await load_signer(conn, uuid.UUID(req.wallet_id), self._master_key)
        signed = signer.sign_transaction(
            {
                "type": 2,
                "chainId": req.chain_id,
                "nonce": nonce,
                "to": HexStr(req.token_address),
                "value": 0,
                # a fixed gas limit, not an estimate: a transfer that will revert is still executed on chain and
                # ends `failed` with its reason, instead of failing to sign forever
                "data": transfer_calldata(req.to, req.amount_atomic),
                "gas": self.gas_limit,
                "maxFeePerGas": fees["maxFeePerGas"],
                "maxPriorityFeePerGas": fees["maxPriorityFeePerGas"],
            }
        )
        del signer
        tx_hash = as_hex(signed.hash)
        raw = bytes(signed.raw_transaction)
        await conn.execute(
            payment_transactions.insert().values(
                tx_hash=tx_hash,
                payment_id=uuid.UUID(req.payment_id),
                nonce=nonce,
                raw=raw,
                max_fee_per_gas=fees["maxFeePerGas"],
                max_priority_fee_per_gas=fees["maxPriorityFeePerGas"],
            )
        )
        await conn.execute(
            payments.update()
            .where(payments.c.id == uuid.UUID(req.payment_id))
            .values(
                signed_tx=raw,
                tx_hash=tx_hash,
                nonce=nonce,
                updated_at=sa.func.now(),
                # the first signature moves the row to `signing` (a replacement's row is already `submitted`)
                **({"status": PaymentStatus.signing} if action == "payment.signed" else {}),
            )
        )
        await append_audit(
            conn,
            tenant_id=req.tenant_id,
            actor="system",
            channel=Channel.system,
            action=action,
            subject_type=AuditSubject.payment,
            subject_id=req.payment_id,
            data={
                "tx_hash": tx_hash,
                "nonce": nonce,
                "from": req.wallet_address,
                "max_fee_per_gas": str(fees["maxFeePerGas"]),
            },
        )
        return tx_hash, raw

    @activity.defn(name=pt.ACT_SIGN)
    async def sign_transfer(self, req: PaymentRequest) -> pt.SignedTransfer:
        signed, _ = await self._sign(req)
        return signed

    async def _sign(self, req: PaymentRequest) -> tuple[pt.SignedTransfer, bytes]:
        """Allocate the nonce, sign, and store the bytes in one transaction; a later call returns those bytes."""
        pid = uuid.UUID(req.payment_id)
        fees = await self._fees.get()
        chain_pending = await self.w3.eth.get_transaction_count(to_checksum_address(req.wallet_address), "pending")
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(payments.c.signed_tx, payments.c.tx_hash, payments.c.nonce, payments.c.status)
                    .where(payments.c.id == pid)
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise ApplicationError(
                    f"payment {pid} is not recorded", type=ErrorType.payment_missing, non_retryable=True
                )
            if row.signed_tx is not None:
                reused = pt.SignedTransfer(payment_id=req.payment_id, tx_hash=row.tx_hash, nonce=row.nonce, reused=True)
                return reused, bytes(row.signed_tx)
            if row.status in PAYMENT_TERMINAL:
                raise ApplicationError(
                    f"payment is already {row.status}", type=ErrorType.payment_closed, non_retryable=True
                )
            nonce = await allocate_nonce(conn, req.chain_id, req.wallet_address, chain_pending)
            tx_hash, raw = await self._sign_and_store(conn, req, nonce, fees, action="payment.signed")
        activity.logger.info("signed payment %s as %s (nonce %d)", req.payment_id, tx_hash, nonce)
        return pt.SignedTransfer(payment_id=req.payment_id, tx_hash=tx_hash, nonce=nonce, reused=False), raw

    @activity.defn(name=pt.ACT_BROADCAST)
    async def broadcast(self, payment_id: str) -> str:
        row = await self._payment(payment_id)
        if row["signed_tx"] is None:
            raise ApplicationError("nothing signed to broadcast", type=ErrorType.not_signed, non_retryable=True)
        await send_stored(self.w3, row["signed_tx"])
        return row["tx_hash"]

    @activity.defn(name=pt.ACT_SIGN_AND_SEND)
    async def sign_and_send(self, req: PaymentRequest) -> pt.SignedTransfer:
        """Sign once (the bytes and their nonce stored and committed first), send, then record `submitted`.

        One step, so an allocated nonce is never left unsent behind a workflow task or a queued activity (one
        such delay stalled a whole wallet's later nonces). A crash after the commit and before the send is
        recovered by the retry: it finds the stored bytes and sends those, never a new transaction."""
        signed, raw = await self._sign(req)
        await send_stored(self.w3, raw)
        async with self.engine.begin() as conn:
            await record_status_or_fail(
                conn, req.payment_id, PaymentStatus.submitted, details={"tx_hash": signed.tx_hash}
            )
        return signed

    @activity.defn(name=pt.ACT_AWAIT_RECEIPT)
    async def await_receipt(self, req: PaymentRequest) -> pt.ReceiptResult:
        """Wait until one attempt's receipt is `confirmations` deep.

        Payments that schedule it without a heartbeat timeout (RECEIPT_FOLLOWED, every payment since
        `receipt-wait-followed`) read the receipt once (mined and deep enough: answered at once), else register
        the wait and complete asynchronously: the chain's follower
        (activities/chain_follower.py) re-sends, replaces, gives up and completes it, so a waiting payment holds
        no activity slot. Payments scheduled before that ask for heartbeats and get the poller they expect."""
        if activity.info().heartbeat_timeout:
            return await self._poll_receipt(req)
        await self._ensure_follower(req.chain_id, activity.info().task_queue)
        landed = await self._landed_deep_enough(req)
        if landed is not None:
            return landed
        await self._register_wait(req)
        activity.raise_complete_async()

    async def _landed_deep_enough(self, req: PaymentRequest) -> pt.ReceiptResult | None:
        """The receipt, read once before handing the wait to the follower: on a chain that mines at once (and
        at depth 1) it is already there, and answering it here saves the follower's pass (up to its idle poll,
        1 s: the serial benchmark's regression), the wait's row and the async completion. The same reading the
        follower makes on a fresh wait: an attempt's receipt, `confirmations` deep."""
        with tenant_scope(req.tenant_id):
            attempts = await self._attempts(req.payment_id)
        attempt, receipt = await first_landed(self.w3, attempts)
        if receipt is None:
            return None
        if self.confirmations > 1 and await self.w3.eth.block_number - receipt["blockNumber"] + 1 < self.confirmations:
            return None
        return await self.result(attempt["tx_hash"], receipt)

    async def _register_wait(self, req: PaymentRequest) -> None:
        info = activity.info()
        assert info.workflow_id is not None  # scheduled by PaymentWorkflow
        # the follower runs (await_receipt ensured it): if this worker dies before the row commits (the insert
        # waits on a lock of the payment's row, say), the follower's scan for unregistered waits retries the wait
        with tenant_scope(req.tenant_id):
            async with self.engine.begin() as conn:
                await receipt_waits.register(
                    conn,
                    payment_id=req.payment_id,
                    tenant_id=req.tenant_id,
                    chain_id=req.chain_id,
                    task_queue=info.task_queue,
                    workflow_id=info.workflow_id,
                    activity_id=info.activity_id,
                    task_token=info.task_token,
                    request=req.model_dump(mode="json"),
                    attempt=info.attempt,
                )

    async def _ensure_follower(self, chain_id: int, task_queue: str) -> None:
        """Start the chain's workflow unless it runs (at most once a minute per worker process): a wait is never
        registered on a chain that nobody follows, whether or not `paygent stack up` started it."""
        key = (chain_id, task_queue)
        if time.monotonic() - self._follower_checked.get(key, float("-inf")) < ENSURE_FOLLOWER_SECONDS:
            return
        await activity.client().start_workflow(
            ct.WORKFLOW_NAME,
            ct.ChainInput(
                chain_id=chain_id,
                task_queue=task_queue,
                config=ct.ChainConfig(reconcile_interval_seconds=self.reconcile_interval_seconds),
            ),
            id=ct.workflow_id(chain_id, task_queue),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Chain {chain_id}: follow blocks, complete receipt waits, reconcile",
        )
        self._follower_checked[key] = time.monotonic()

    @activity.defn(name=pt.ACT_RECEIPT_GAVE_UP)
    async def receipt_wait_gave_up(self, req: PaymentRequest) -> pt.ReceiptResult:
        """The wait's own timeout passed before the follower answered (it was down that long): mark the payment
        for the reconciler, as the follower does at PAYGENT_RECEIPT_WAIT_SECONDS."""
        attempts = await self._attempts(req.payment_id)
        if not attempts:
            raise ApplicationError("nothing signed to wait for", type=ErrorType.not_signed, non_retryable=True)
        async with self.engine.begin() as conn:
            await conn.execute(
                receipt_waits.receipt_waits.delete().where(
                    receipt_waits.receipt_waits.c.payment_id == uuid.UUID(req.payment_id)
                )
            )
        return await self.give_up(req, attempts[-1])

    async def _poll_receipt(self, req: PaymentRequest) -> pt.ReceiptResult:
        """Poll until one attempt's receipt is `confirmations` deep; re-send what the node forgot (restart,
        reorg); replace the transaction with higher fees when it is not mined within the deadline.

        Takes the workflow's request (the terms that were signed) rather than rebuilding it from the row."""
        payment_id = req.payment_id
        started = time.monotonic()
        attempts = await self._attempts(payment_id)  # only this activity adds attempts (a replacement)
        sent_at, pause = float("-inf"), self.poll_seconds
        while True:
            activity.heartbeat()
            attempt, receipt = await first_landed(self.w3, attempts)
            if receipt is not None:
                depth = await self.w3.eth.block_number - receipt["blockNumber"] + 1
                if depth >= self.confirmations:
                    return await self.result(attempt["tx_hash"], receipt)
            else:
                if time.monotonic() - sent_at >= RESEND_SECONDS:
                    latest = attempts[-1]
                    for a in attempts:  # keep every attempt known to the node; the nonce lets only one land
                        await send_stored(self.w3, a["raw"])
                    sent_at = time.monotonic()
                    mined_nonce = await self.w3.eth.get_transaction_count(
                        to_checksum_address(req.wallet_address), "latest"
                    )
                    if mined_nonce > latest["nonce"] and (await first_landed(self.w3, attempts))[1] is None:
                        raise ApplicationError(
                            f"nonce {latest['nonce']} was used by a transaction that is not this payment's",
                            type=ErrorType.nonce_conflict,
                            non_retryable=True,
                        )
                    if time.monotonic() - started >= self.replace_after_seconds:
                        await self.replace(req, latest)
                        attempts = await self._attempts(payment_id)
                        started = time.monotonic()
                if datetime.now(UTC) - attempts[0]["created_at"] >= timedelta(seconds=self.receipt_wait_seconds):
                    return await self.give_up(req, attempts[-1])
            await asyncio.sleep(pause)
            # Back off while nothing lands: with hundreds of payments in flight, a fixed 0.25 s loop of a
            # database read, a resend and two RPCs each starved the worker until heartbeats timed out
            # (1,000-payment load run, issue 11: 389 receipt waits cancelled and restarted).
            pause = min(pause * POLL_BACKOFF, MAX_POLL_SECONDS)

    async def give_up(self, req: PaymentRequest, latest) -> pt.ReceiptResult:
        """Stop waiting, not hoping: the signed transaction may still land, so the payment stays `submitted`
        (reservation held) and is marked for the reconciler, which re-sends it and settles it either way."""
        async with self.engine.begin() as conn:
            await conn.execute(
                payments.update()
                .where(payments.c.id == uuid.UUID(req.payment_id))
                .values(
                    details=payments.c.details.op("||")(
                        sa.func.jsonb_build_object(RECEIPT_WAIT_GAVE_UP, sa.func.now())
                    ),
                    updated_at=sa.func.now(),
                )
            )
            await append_audit(
                conn,
                tenant_id=req.tenant_id,
                actor="system",
                channel=Channel.system,
                action=AuditAction.payment_receipt_wait_gave_up,
                subject_type=AuditSubject.payment,
                subject_id=req.payment_id,
                data={
                    "tx_hash": latest["tx_hash"],
                    "nonce": latest["nonce"],
                    "waited_seconds": self.receipt_wait_seconds,
                },
            )
        activity.logger.warning(
            "payment %s: no receipt after %ss; left to the reconciler", req.payment_id, self.receipt_wait_seconds
        )
        return pt.ReceiptResult(tx_hash=latest["tx_hash"], succeeded=False, block_number=None, gas_used=0, pending=True)

    async def replace(self, req: PaymentRequest, latest) -> bool:
        """Same nonce, fees raised by 12.5% over the previous attempt (and at least the current market).

        False when `latest` is no longer the latest attempt (someone replaced it meanwhile: a follower that
        outlived its heartbeat beside its successor must not replace twice)."""
        market = await fee_fields(self.w3)
        bumped: FeeFields = {
            "maxPriorityFeePerGas": Wei(
                max(
                    int(latest["max_priority_fee_per_gas"]) * FEE_BUMP_NUMERATOR // FEE_BUMP_DENOMINATOR + 1,
                    market["maxPriorityFeePerGas"],
                )
            ),
            "maxFeePerGas": Wei(
                max(
                    int(latest["max_fee_per_gas"]) * FEE_BUMP_NUMERATOR // FEE_BUMP_DENOMINATOR + 1,
                    market["maxFeePerGas"],
                )
            ),
        }
        async with self.engine.begin() as conn:
            current = await conn.scalar(
                sa.select(payments.c.tx_hash).where(payments.c.id == uuid.UUID(req.payment_id)).with_for_update()
            )
            if current != latest["tx_hash"]:
                return False
            tx_hash, raw = await self._sign_and_store(conn, req, latest["nonce"], bumped, action="payment.replaced")
        activity.logger.info("replaced %s with %s for payment %s", latest["tx_hash"], tx_hash, req.payment_id)
        await send_stored(self.w3, raw)
        return True

    async def result(self, tx_hash: str, receipt) -> pt.ReceiptResult:
        reason = None
        if receipt["status"] != 1:
            reason = await self._revert_reason(tx_hash, receipt["blockNumber"])
        return pt.ReceiptResult(
            tx_hash=tx_hash,
            succeeded=receipt["status"] == 1,
            block_number=receipt["blockNumber"],
            gas_used=receipt["gasUsed"],
            revert_reason=reason,
        )

    async def _revert_reason(self, tx_hash: str, block_number: int) -> str:
        return await revert_reason(self.w3, tx_hash, block_number)
