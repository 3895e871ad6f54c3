"""Signing and broadcasting token transfers, exactly once per payment.

The invariant: a payment has at most one signed transaction. `sign_transfer` persists the signed bytes (with
the nonce it allocated) in the same database transaction that marks the payment signed; every later attempt,
after a crash or a retry, reads and re-sends those bytes and reconciles by their hash.
"""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from paygent.chain.nonces import allocate_nonce
from paygent.chain.token import fee_fields, transfer_calldata
from paygent.db.accounts import load_signer
from paygent.db.audit import append_audit
from paygent.db.schema import payments
from workflows import payment_types as t


class ChainActivities:
    def __init__(self, engine: AsyncEngine, rpc_url: str, master_key: bytes, *, gas_limit: int,
                 confirmations: int, poll_seconds: float = 0.25) -> None:
        self.engine = engine
        self.w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(rpc_url))
        self._master_key = master_key
        self.gas_limit = gas_limit
        self.confirmations = confirmations
        self.poll_seconds = poll_seconds

    async def _payment(self, payment_id: str):
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(payments).where(payments.c.id == uuid.UUID(payment_id)))).mappings().first()
        if row is None:
            raise ApplicationError(f"payment {payment_id} is not recorded", type="PaymentMissing", non_retryable=True)
        return row

    @activity.defn(name=t.ACT_SIGN)
    async def sign_transfer(self, req: t.PaymentRequest) -> t.SignedTransfer:
        pid = uuid.UUID(req.payment_id)
        fees = await fee_fields(self.w3)
        chain_pending = await self.w3.eth.get_transaction_count(req.wallet_address, "pending")
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.select(payments.c.signed_tx, payments.c.tx_hash, payments.c.nonce,
                                                payments.c.status).where(payments.c.id == pid)
                                      .with_for_update())).first()
            if row is None:
                raise ApplicationError(f"payment {pid} is not recorded", type="PaymentMissing", non_retryable=True)
            if row.signed_tx is not None:
                return t.SignedTransfer(payment_id=req.payment_id, tx_hash=row.tx_hash, nonce=row.nonce, reused=True)
            if row.status in t.TERMINAL:
                raise ApplicationError(f"payment is already {row.status}", type="PaymentClosed", non_retryable=True)
            nonce = await allocate_nonce(conn, req.chain_id, req.wallet_address, chain_pending)
            signer = await load_signer(conn, uuid.UUID(req.wallet_id), self._master_key)
            signed = signer.sign_transaction({
                "type": 2, "chainId": req.chain_id, "nonce": nonce, "to": req.token_address, "value": 0,
                # a fixed gas limit, not an estimate: a transfer that will revert is still executed on
                # chain and ends `failed` with its reason, instead of failing to sign forever
                "data": transfer_calldata(req.to, req.amount_atomic), "gas": self.gas_limit, **fees,
            })
            del signer
            tx_hash = "0x" + signed.hash.hex().removeprefix("0x")
            await conn.execute(payments.update().where(payments.c.id == pid).values(
                signed_tx=bytes(signed.raw_transaction), tx_hash=tx_hash, nonce=nonce, updated_at=sa.func.now()))
            await append_audit(conn, tenant_id=req.tenant_id, actor="system", channel="system",
                               action="payment.signed", subject_type="payment", subject_id=req.payment_id,
                               data={"tx_hash": tx_hash, "nonce": nonce, "from": req.wallet_address})
        activity.logger.info("signed payment %s as %s (nonce %d)", req.payment_id, tx_hash, nonce)
        return t.SignedTransfer(payment_id=req.payment_id, tx_hash=tx_hash, nonce=nonce, reused=False)

    async def _send_signed(self, row) -> None:
        """Send the stored bytes; 'already known' or a nonce used by this very tx are success, not errors."""
        try:
            await self.w3.eth.send_raw_transaction(row["signed_tx"])
        except (Web3RPCError, ValueError) as err:
            text = str(err).lower()
            if "already known" in text or "already imported" in text:
                return
            if "nonce too low" in text:
                if await self._known(row["tx_hash"]):
                    return
                raise ApplicationError(f"nonce {row['nonce']} was used by another transaction",
                                       type="NonceConflict", non_retryable=True) from None
            raise

    async def _known(self, tx_hash: str) -> bool:
        try:
            await self.w3.eth.get_transaction(tx_hash)
            return True
        except TransactionNotFound:
            return False

    @activity.defn(name=t.ACT_BROADCAST)
    async def broadcast(self, payment_id: str) -> str:
        row = await self._payment(payment_id)
        if row["signed_tx"] is None:
            raise ApplicationError("nothing signed to broadcast", type="NotSigned", non_retryable=True)
        await self._send_signed(row)
        return row["tx_hash"]

    @activity.defn(name=t.ACT_AWAIT_RECEIPT)
    async def await_receipt(self, payment_id: str) -> t.ReceiptResult:
        """Poll until the receipt is `confirmations` deep; re-send the same bytes if the node forgot the tx."""
        row = await self._payment(payment_id)
        tx_hash = row["tx_hash"]
        while True:
            activity.heartbeat()
            try:
                receipt = await self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                receipt = None
            if receipt is not None:
                depth = await self.w3.eth.block_number - receipt["blockNumber"] + 1
                if depth >= self.confirmations:
                    return await self._result(row, receipt)
            elif not await self._known(tx_hash):
                await self._send_signed(row)  # dropped (node restart, reorg): same bytes, same hash
            await asyncio.sleep(self.poll_seconds)

    async def _result(self, row, receipt) -> t.ReceiptResult:
        reason = None
        if receipt["status"] != 1:
            reason = await self._revert_reason(row, receipt["blockNumber"])
        return t.ReceiptResult(tx_hash=row["tx_hash"], succeeded=receipt["status"] == 1,
                               block_number=receipt["blockNumber"], gas_used=receipt["gasUsed"],
                               revert_reason=reason)

    async def _revert_reason(self, row, block_number: int) -> str:
        """Replay the call on the state before its block to read the revert message."""
        tx = await self.w3.eth.get_transaction(row["tx_hash"])
        try:
            await self.w3.eth.call({"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": 0},
                                   block_identifier=block_number - 1)
        except ContractLogicError as err:
            return str(err.message or err)
        except Exception as err:  # the node may not keep old state; say what we know
            return f"reverted (reason unavailable: {type(err).__name__})"
        return "reverted"
