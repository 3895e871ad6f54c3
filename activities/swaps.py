"""A swap's chain steps: quote, sign and send (re-quote, approve exactly, swap), receipt, allowance reset, settle.

Exactly once, as transfers (activities/chain.py): each transaction's nonce is allocated, its signed bytes stored
(`swap_transactions`, one row per step) and committed before the first send, in one step; a retry finds the rows
and re-sends those bytes, never new ones. The approve (exact amount, never unlimited) and the swap are signed in
the same database transaction with consecutive nonces of the wallet, so another swap from the same wallet can
never land its approve between them (nonces execute in order). The re-quote runs in that step, just before
signing: a price that moved past the minimum stops the swap with nothing signed.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import sqlalchemy as sa
from eth_typing import HexStr
from eth_utils import to_checksum_address
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError
from web3.exceptions import TransactionNotFound

from activities.payments import record_status_or_fail
from paygent.chain import uniswap
from paygent.chain.nonces import allocate_nonce
from paygent.chain.resend import send_stored
from paygent.chain.revert import revert_reason
from paygent.chain.rpc import async_web3
from paygent.chain.token import FeeFields, fee_fields
from paygent.db import reservations
from paygent.db.accounts import load_signer
from paygent.db.audit import append_audit
from paygent.db.ledger import wallet_account
from paygent.db.schema import ledger_entries, payments, swap_transactions
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.errors import ErrorType
from paygent.domain.payment import PAYMENT_TERMINAL, PaymentStatus
from paygent.domain.swap import SwapPolicy, SwapRefused, check_requote, guard_quote
from workflows import swap_types as sw

POLL_SECONDS = 0.25
RESEND_SECONDS = 2.0


def _hex(value) -> str:
    text = value.hex() if hasattr(value, "hex") else str(value)
    return text if text.startswith("0x") else "0x" + text


class SwapActivities:
    def __init__(
        self, engine: AsyncEngine, rpc_url: str, master_key: bytes, *, gas_limit: int, confirmations: int
    ) -> None:
        self.engine = engine
        self.w3 = async_web3(rpc_url)
        self._master_key = master_key
        self.gas_limit = gas_limit
        self.confirmations = confirmations

    def activities(self) -> list:
        return [self.quote, self.sign_and_send, self.await_receipt, self.reset_allowance, self.settle]

    # ------------------------------------------------------------------ quote
    @activity.defn(name=sw.ACT_QUOTE)
    async def quote(self, q: sw.QuoteRequest) -> sw.QuoteResult:
        """getAmountsOut and the reserves at one block, guarded; a refusal is an answer, not an error."""
        try:
            pool = await uniswap.quote(self.w3, q.router, q.factory, q.token_in, q.token_out, q.amount_in)
        except uniswap.NoPool as exc:
            return sw.QuoteResult(refused_by="no_pool", message=str(exc))
        policy = SwapPolicy(max_slippage_bps=10_000, max_price_impact_bps=q.max_price_impact_bps)
        try:
            guarded = guard_quote(
                q.amount_in, pool.amount_out, pool.reserve_in, pool.reserve_out, q.slippage_bps, policy
            )
        except SwapRefused as refused:
            return sw.QuoteResult(
                amount_out=pool.amount_out, refused_by=refused.guard, message=refused.message, pair=pool.pair
            )
        return sw.QuoteResult(
            amount_out=guarded.amount_out,
            min_amount_out=guarded.min_amount_out,
            price_impact_bps=guarded.price_impact_bps,
            reserve_in=pool.reserve_in,
            reserve_out=pool.reserve_out,
            pair=pool.pair,
            block_number=pool.block_number,
        )

    # ------------------------------------------------------------------ sign and send
    async def _stored(self, conn: AsyncConnection, payment_id: str) -> dict[str, dict]:
        rows = (
            await conn.execute(
                sa.select(swap_transactions).where(swap_transactions.c.payment_id == uuid.UUID(payment_id))
            )
        ).mappings()
        return {r["step"]: dict(r) for r in rows}

    async def _sign_store(
        self,
        conn: AsyncConnection,
        signer,
        *,
        payment_id: str,
        tenant_id: str,
        chain_id: int,
        wallet_address: str,
        step: str,
        nonce: int,
        to: str,
        data: bytes,
        fees: FeeFields,
        terms: dict,
    ) -> tuple[str, bytes]:
        signed = signer.sign_transaction(
            {
                "type": 2,
                "chainId": chain_id,
                "nonce": nonce,
                "to": HexStr(to_checksum_address(to)),
                "value": 0,
                "data": data,
                "gas": self.gas_limit,  # fixed, not estimated: a swap that will revert executes and says why
                "maxFeePerGas": fees["maxFeePerGas"],
                "maxPriorityFeePerGas": fees["maxPriorityFeePerGas"],
            }
        )
        tx_hash, raw = _hex(signed.hash), bytes(signed.raw_transaction)
        await conn.execute(
            swap_transactions.insert().values(
                payment_id=uuid.UUID(payment_id), step=step, tx_hash=tx_hash, nonce=nonce, raw=raw, terms=terms
            )
        )
        await append_audit(
            conn,
            tenant_id=tenant_id,
            actor="system",
            channel=Channel.system,
            action=AuditAction(f"payment.swap_{step}_signed"),
            subject_type=AuditSubject.payment,
            subject_id=payment_id,
            data={"tx_hash": tx_hash, "nonce": nonce, "from": wallet_address, **terms},
        )
        return tx_hash, raw

    @activity.defn(name=sw.ACT_SIGN_AND_SEND)
    async def sign_and_send(self, s: sw.SignRequest) -> sw.SignedSwap:
        """Re-quote; then approve (exactly the amount, unless exactly that allowance is in place) and swap, signed
        with consecutive nonces and stored in one transaction, committed, then sent; `submitted` recorded."""
        req, swap = s.swap.payment, s.swap
        pid = uuid.UUID(req.payment_id)
        async with self.engine.connect() as conn:
            stored = await self._stored(conn, req.payment_id)
        if sw.STEP_SWAP not in stored:
            pool = await uniswap.quote(
                self.w3, swap.router, swap.factory, req.token_address, swap.token_out, req.amount_atomic
            )
            try:
                check_requote(pool.amount_out, s.min_amount_out, swap.decimals_out, swap.asset_out)
            except SwapRefused as refused:
                raise ApplicationError(
                    f"{refused.guard}: {refused.message}", type=ErrorType.swap_refused, non_retryable=True
                ) from None
            requoted = pool.amount_out
            deadline = pool.block_timestamp + swap.deadline_seconds
            fees = await fee_fields(self.w3)
            pending = await self.w3.eth.get_transaction_count(to_checksum_address(req.wallet_address), "pending")
            async with self.engine.begin() as conn:
                status = await conn.scalar(sa.select(payments.c.status).where(payments.c.id == pid).with_for_update())
                if status is None:
                    raise ApplicationError(
                        f"payment {pid} is not recorded", type=ErrorType.payment_missing, non_retryable=True
                    )
                stored = await self._stored(conn, req.payment_id)  # under the row lock: another attempt may have won
                if sw.STEP_SWAP not in stored:
                    if status in PAYMENT_TERMINAL:
                        raise ApplicationError(
                            f"payment is already {status}", type=ErrorType.payment_closed, non_retryable=True
                        )
                    signer = await load_signer(conn, uuid.UUID(req.wallet_id), self._master_key)
                    common: dict[str, Any] = dict(
                        payment_id=req.payment_id,
                        tenant_id=req.tenant_id,
                        chain_id=req.chain_id,
                        wallet_address=req.wallet_address,
                        fees=fees,
                    )
                    # The first nonce's allocation locks the wallet's nonce row: no other swap or payment of this
                    # wallet signs until this transaction commits. Only then is an allowance of exactly the amount
                    # reused, and only when nothing of the wallet is in flight (another swap's approve mined but
                    # its swap not yet would otherwise be taken for ours).
                    nonce = await allocate_nonce(conn, req.chain_id, req.wallet_address, pending)
                    wallet = to_checksum_address(req.wallet_address)
                    quiet = await self.w3.eth.get_transaction_count(wallet, "latest") == nonce
                    quiet = quiet and await self.w3.eth.get_transaction_count(wallet, "pending") == nonce
                    current = await uniswap.allowance(self.w3, req.token_address, req.wallet_address, swap.router)
                    if not (quiet and current == req.amount_atomic):
                        await self._sign_store(
                            conn,
                            signer,
                            **common,
                            step=sw.STEP_APPROVE,
                            nonce=nonce,
                            to=req.token_address,
                            data=uniswap.approve_calldata(swap.router, req.amount_atomic),
                            terms={
                                "spender": swap.router,
                                "amount_atomic": str(req.amount_atomic),
                                "was": str(current),
                            },
                        )
                        nonce = await allocate_nonce(conn, req.chain_id, req.wallet_address, pending)
                    swap_hash, _ = await self._sign_store(
                        conn,
                        signer,
                        **common,
                        step=sw.STEP_SWAP,
                        nonce=nonce,
                        to=swap.router,
                        data=uniswap.swap_calldata(
                            req.amount_atomic,
                            s.min_amount_out,
                            [req.token_address, swap.token_out],
                            req.wallet_address,
                            deadline,
                        ),
                        terms={
                            "amount_in": str(req.amount_atomic),
                            "min_amount_out": str(s.min_amount_out),
                            "requoted_amount_out": str(requoted),
                            "deadline": deadline,
                        },
                    )
                    del signer
                    await conn.execute(
                        payments.update()
                        .where(payments.c.id == pid)
                        .values(tx_hash=swap_hash, status=PaymentStatus.signing, updated_at=sa.func.now())
                    )
                    stored = await self._stored(conn, req.payment_id)
                    reused = False
                else:
                    reused = True
        else:
            reused = True
        for step in (sw.STEP_APPROVE, sw.STEP_SWAP):  # in nonce order
            if step in stored:
                await send_stored(self.w3, stored[step]["raw"])
        async with self.engine.begin() as conn:
            await record_status_or_fail(
                conn, req.payment_id, PaymentStatus.submitted, details={"tx_hash": stored[sw.STEP_SWAP]["tx_hash"]}
            )
        terms = stored[sw.STEP_SWAP]["terms"]
        return sw.SignedSwap(
            approve_tx_hash=stored[sw.STEP_APPROVE]["tx_hash"] if sw.STEP_APPROVE in stored else None,
            swap_tx_hash=stored[sw.STEP_SWAP]["tx_hash"],
            deadline=int(terms["deadline"]),
            requoted_amount_out=int(terms["requoted_amount_out"]),
            reused=reused,
        )

    # ------------------------------------------------------------------ receipts
    @activity.defn(name=sw.ACT_AWAIT_RECEIPT)
    async def await_receipt(self, r: sw.ReceiptRequest) -> sw.SwapReceipt:
        """Poll until the step's receipt is `confirmations` deep, re-sending the stored bytes (every earlier
        step's too, in nonce order) while it is not mined. Heartbeats: a dead worker's wait moves on."""
        async with self.engine.connect() as conn:
            stored = await self._stored(conn, r.payment_id)
        if r.step not in stored:
            raise ApplicationError(f"nothing signed for step {r.step}", type=ErrorType.not_signed, non_retryable=True)
        order = [stored[s] for s in (sw.STEP_APPROVE, sw.STEP_SWAP, sw.STEP_RESET) if s in stored]
        order = [row for row in order if row["nonce"] <= stored[r.step]["nonce"]]
        tx_hash = stored[r.step]["tx_hash"]
        sent_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            activity.heartbeat()
            try:
                receipt = await self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
            except TransactionNotFound:
                receipt = None
            if receipt is not None:
                depth = await self.w3.eth.block_number - receipt["blockNumber"] + 1
                if depth >= self.confirmations:
                    reason = (
                        None if receipt["status"] == 1 else await self._revert_reason(tx_hash, receipt["blockNumber"])
                    )
                    return sw.SwapReceipt(
                        tx_hash=tx_hash,
                        succeeded=receipt["status"] == 1,
                        block_number=receipt["blockNumber"],
                        gas_used=receipt["gasUsed"],
                        revert_reason=reason,
                    )
            elif loop.time() - sent_at >= RESEND_SECONDS:
                for row in order:
                    await send_stored(self.w3, row["raw"])
                sent_at = loop.time()
            await asyncio.sleep(POLL_SECONDS)

    async def _revert_reason(self, tx_hash: str, block_number: int) -> str:
        """Replayed on the state at the END of its block, not before it: the swap's own approve is mined in the
        same block just ahead of it (the state before would say TRANSFER_FROM_FAILED), and what made it revert (a
        price moved by a trade ahead of it, the time past its deadline) is still so after the block."""
        return (await revert_reason(self.w3, tx_hash, block_number + 1)).removeprefix("execution reverted: ")

    # ------------------------------------------------------------------ allowance reset
    @activity.defn(name=sw.ACT_RESET_ALLOWANCE)
    async def reset_allowance(self, r: sw.ResetRequest) -> sw.ResetResult:
        """Set the router's allowance back to 0 (one transaction per swap, ever: its row is the guard), and wait
        until it is mined. Nothing to do when the chain already shows 0."""
        pid = uuid.UUID(r.payment_id)
        async with self.engine.connect() as conn:
            stored = await self._stored(conn, r.payment_id)
        if sw.STEP_APPROVE not in stored:  # this swap raised no allowance (none signed, or one exactly in place)
            after = await uniswap.allowance(self.w3, r.token_in, r.wallet_address, r.router)
            return sw.ResetResult(tx_hash=None, allowance_after=after)
        if sw.STEP_RESET not in stored:
            current = await uniswap.allowance(self.w3, r.token_in, r.wallet_address, r.router)
            if current == 0:
                return sw.ResetResult(tx_hash=None, allowance_after=0)
            fees = await fee_fields(self.w3)
            pending = await self.w3.eth.get_transaction_count(to_checksum_address(r.wallet_address), "pending")
            async with self.engine.begin() as conn:
                await conn.execute(sa.select(payments.c.id).where(payments.c.id == pid).with_for_update())
                stored = await self._stored(conn, r.payment_id)
                if sw.STEP_RESET not in stored:
                    signer = await load_signer(conn, uuid.UUID(r.wallet_id), self._master_key)
                    nonce = await allocate_nonce(conn, r.chain_id, r.wallet_address, pending)
                    await self._sign_store(
                        conn,
                        signer,
                        payment_id=r.payment_id,
                        tenant_id=r.tenant_id,
                        chain_id=r.chain_id,
                        wallet_address=r.wallet_address,
                        step=sw.STEP_RESET,
                        nonce=nonce,
                        to=r.token_in,
                        data=uniswap.approve_calldata(r.router, 0),
                        fees=fees,
                        terms={"spender": r.router, "amount_atomic": "0", "was": str(current)},
                    )
                    del signer
                    stored = await self._stored(conn, r.payment_id)
        await send_stored(self.w3, stored[sw.STEP_RESET]["raw"])
        receipt = await self.await_receipt(
            sw.ReceiptRequest(payment_id=r.payment_id, tenant_id=r.tenant_id, step=sw.STEP_RESET)
        )
        after = await uniswap.allowance(self.w3, r.token_in, r.wallet_address, r.router)
        return sw.ResetResult(tx_hash=receipt.tx_hash, allowance_after=after)

    # ------------------------------------------------------------------ settle
    @activity.defn(name=sw.ACT_SETTLE)
    async def settle(self, s: sw.Settlement) -> sw.Settled:
        """Both legs from the receipt's Transfer logs (the real amount out, not the quote): the wallet's input
        asset out to the pair and its output asset in from the pair; the reservation committed; `confirmed`."""
        req, swap = s.swap.payment, s.swap
        pid = uuid.UUID(req.payment_id)
        receipt = await self.w3.eth.get_transaction_receipt(HexStr(s.receipt.tx_hash))
        legs = uniswap.swap_legs(receipt, req.wallet_address, req.token_address, swap.token_out)
        gas = s.receipt.gas_used
        async with self.engine.connect() as conn:
            stored = await self._stored(conn, req.payment_id)
        if sw.STEP_APPROVE in stored:
            approve = await self.w3.eth.get_transaction_receipt(HexStr(stored[sw.STEP_APPROVE]["tx_hash"]))
            gas += int(approve["gasUsed"])
        pair = legs.pair or req.to
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(payments.c.status, payments.c.details).where(payments.c.id == pid).with_for_update()
                )
            ).one()
            if row.status not in PAYMENT_TERMINAL:
                swap_details = {
                    "amount_in": str(legs.amount_in),
                    "amount_out": str(legs.amount_out),
                    "quoted_amount_out": str(s.quoted_amount_out),
                    "min_amount_out": str(s.min_amount_out),
                    "price_impact_bps": s.price_impact_bps,
                    "gas_used": gas,
                    "pair": pair,
                }
                await conn.execute(
                    payments.update()
                    .where(payments.c.id == pid)
                    .values(
                        status=PaymentStatus.confirmed,
                        block_number=s.receipt.block_number,
                        tx_hash=s.receipt.tx_hash,
                        details={**row.details, "swap": {**(row.details.get("swap") or {}), **swap_details}},
                        updated_at=sa.func.now(),
                    )
                )
                await reservations.settle_reservation(conn, pid, reservations.COMMITTED)
                rows = [
                    (wallet_account(req.wallet_id), req.asset, -legs.amount_in),
                    (f"external:{pair}", req.asset, legs.amount_in),
                    (wallet_account(req.wallet_id), swap.asset_out, legs.amount_out),
                    (f"external:{pair}", swap.asset_out, -legs.amount_out),
                ]
                await conn.execute(
                    pg_insert(ledger_entries)
                    .values(
                        [
                            {
                                "tenant_id": uuid.UUID(req.tenant_id),
                                "payment_id": pid,
                                "account": account,
                                "asset": asset,
                                "amount_atomic": amount,
                                "tx_hash": s.receipt.tx_hash,
                            }
                            for account, asset, amount in rows
                        ]
                    )
                    .on_conflict_do_nothing(constraint="ledger_one_entry_per_account")
                )
                await append_audit(
                    conn,
                    tenant_id=req.tenant_id,
                    actor="system",
                    channel=Channel.system,
                    action=f"payment.{PaymentStatus.confirmed}",
                    subject_type=AuditSubject.payment,
                    subject_id=req.payment_id,
                    data={"tx_hash": s.receipt.tx_hash, "block_number": s.receipt.block_number, **swap_details},
                )
        return sw.Settled(amount_in=legs.amount_in, amount_out=legs.amount_out, gas_used=gas)
