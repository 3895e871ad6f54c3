"""Finality checks on booked payments, shared by the chain follower (fast, after each reorg it sees) and the
reconciler (every tick, the backup; it alone reverses, because its findings become webhook events).

`Finality.check` reads what the chain shows of one booked payment, asks `paygent.domain.finality` for the verdict
and acts: re-send the stored bytes and record `payment.reorged` once; record the new block
(`payment.reincluded`); or, for the reconciler, reverse it (`payment.reorged_out`, compensating ledger entries,
an open mismatch). `Finality.fill_gap` keeps a wallet's queue moving when a nonce below its waiting transactions
is missing: the stored bytes of the payment that held it are sent again, and if nothing fills it within
GAP_FILL_SECONDS a no-op transaction (0 ETH to the wallet itself) takes the nonce, after which that payment is
`reorged_out` and reversed by the next reconcile tick.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from eth_typing import HexStr
from eth_utils import to_checksum_address
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from web3 import AsyncWeb3

from paygent.chain import transfer_logs
from paygent.chain.resend import first_landed, send_stored
from paygent.chain.token import fee_fields, token_abi
from paygent.db import finality as db
from paygent.db.accounts import load_signer
from paygent.db.audit import append_audit
from paygent.db.tenancy import tenant_transaction
from paygent.domain import finality as rules
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.payment import PaymentKind
from paygent.domain.reconcile import MISMATCH_OPENED

GAP_FILL_SECONDS = 15.0  # a missing nonce the stored bytes did not fill this long: a no-op fills it
NOOP_GAS = 21_000
REORGS_METRIC = "paygent_payment_reorgs"


def _count(outcome: str) -> None:
    """`paygent_payment_reorgs{outcome}` on the worker's metrics endpoint (only inside an activity)."""
    if activity.in_activity():
        activity.metric_meter().create_counter(REORGS_METRIC, "Booked payments a reorg touched, by outcome").add(
            1, {"outcome": outcome}
        )


class Finality:
    def __init__(self, engine: AsyncEngine, w3: AsyncWeb3, master_key: bytes | None = None) -> None:
        self.engine, self.w3, self._master_key = engine, w3, master_key
        self._gap_seen: dict[tuple[str, int], float] = {}

    async def check(
        self, tenant_id: uuid.UUID | str, payment: dict, *, head: int, reverse: bool
    ) -> list[dict[str, Any]]:
        """One booked payment against the chain; returns the events written, as (type, data) dicts."""
        verdict, landed = await self._verdict(payment)
        if verdict == rules.BookedVerdict.CANONICAL and not db.reorg_pending(payment):
            return []  # where it was booked, as booked: nothing to write (the common case, with no transaction)
        pid = str(payment["id"])
        events: list[dict[str, Any]] = []
        async with tenant_transaction(self.engine, tenant_id) as conn:
            moved = verdict == rules.BookedVerdict.MOVED or (
                verdict == rules.BookedVerdict.CANONICAL and db.reorg_pending(payment)  # landed again, same height
            )
            if moved and landed is not None:
                tx_hash, block = landed
                if await db.mark_reincluded(conn, payment, tx_hash=tx_hash, block_number=block):
                    events.append({"type": db.ACTION_REINCLUDED, "payment_id": pid, "tx_hash": tx_hash, "block": block})
            elif verdict in (rules.BookedVerdict.RESEND, rules.BookedVerdict.AWAIT_SERVER):
                reason = (
                    "its transaction left the canonical chain; the same signed bytes were sent again"
                    if verdict == rules.BookedVerdict.RESEND
                    else "its settlement left the canonical chain; the authorization is still valid and only the "
                    "server holding it can settle it again"
                )
                if await db.mark_reorged(conn, payment, reason=reason):
                    events.append({"type": db.ACTION_REORGED, "payment_id": pid, "reason": reason})
            elif (
                verdict == rules.BookedVerdict.REORGED_OUT and reverse and (await self._verdict(payment))[0] == verdict
            ):
                # read twice: a node that answered "no receipt" once by mistake must not reverse a payment
                reason = (
                    "ReorgedOut: a reorg deeper than the confirmation depth dropped its transaction and its nonce "
                    "was used by another transaction; the ledger entries are reversed"
                    if payment["kind"] != PaymentKind.x402
                    else "ReorgedOut: a reorg dropped its settlement and the authorization expired unused"
                )
                found = await db.reverse(conn, payment, reason=reason, block_number=head)
                if found is not None:
                    events.append({"type": db.ACTION_REORGED_OUT, "payment_id": pid, "reason": reason})
                    if found["mismatch_id"] is not None:
                        events.append({"type": MISMATCH_OPENED, **found})
        if verdict == rules.BookedVerdict.RESEND:
            await self._resend(payment)
        for e in events:
            _count(e["type"].split(".", 1)[1])
            activity.logger.warning("payment %s: %s", pid, e["type"]) if activity.in_activity() else None
        return events

    async def _resend(self, payment: dict) -> None:
        """The stored bytes again; a node that refuses them (funds, fees) is logged, never fails the caller: the
        next check tries again, and a nonce left unused behind later ones is a gap the follower fills."""
        for a in payment["attempts"]:
            try:
                await send_stored(self.w3, bytes(a["raw"]))
            except Exception as err:
                if activity.in_activity():
                    activity.logger.warning("payment %s: re-send refused: %s", payment["id"], err)

    async def _verdict(self, payment: dict) -> tuple[rules.BookedVerdict, tuple[str, int] | None]:
        booked = payment["block_number"]
        if payment["kind"] == PaymentKind.x402:
            landed = None
            if payment["tx_hash"]:
                _, receipt = await first_landed(self.w3, [{"tx_hash": payment["tx_hash"]}])
                landed = (payment["tx_hash"], int(receipt["blockNumber"])) if receipt is not None else None
            signed = (payment["details"] or {}).get("signed") or {}
            if not signed:
                return rules.BookedVerdict.CANONICAL, None  # nothing was authorized: nothing a reorg can undo
            token = self.w3.eth.contract(address=to_checksum_address(signed["requirement"]["asset"]), abi=token_abi())
            nonce = bytes.fromhex(signed["authorization_nonce"].removeprefix("0x"))
            used = bool(await token.functions.authorizationState(to_checksum_address(signed["payer"]), nonce).call())
            head = await self.w3.eth.get_block("latest")
            if landed is None and used:  # settled again by its server: find the transaction the chain shows now
                landed = await self._authorization_tx(signed, int(head["number"]))
            verdict = rules.authorization_verdict(
                landed_block=landed[1] if landed else None,
                booked_block=booked,
                used=used,
                valid_before=int(signed["valid_before"]),
                now=max(int(head["timestamp"]), int(time.time())),
            )
            return verdict, landed
        attempts = payment["attempts"]
        if not attempts:
            return rules.BookedVerdict.CANONICAL, None  # nothing of ours to check (booked before signing? never)
        attempt, receipt = await first_landed(self.w3, attempts)
        landed = (attempt["tx_hash"], int(receipt["blockNumber"])) if receipt is not None else None
        mined = (  # the wallet's nonce decides only for a transaction that is not in the chain
            -1
            if landed is not None
            else await self.w3.eth.get_transaction_count(to_checksum_address(payment["wallet_address"]), "latest")
        )
        verdict = rules.transfer_verdict(
            landed_block=landed[1] if landed else None,
            booked_block=booked,
            mined_nonce=mined,
            nonce=int(attempts[-1]["nonce"]),
        )
        return verdict, landed

    async def _authorization_tx(self, signed: dict, head: int) -> tuple[str, int] | None:
        """The transaction (and block) that consumed this authorization, within the finality window."""
        asset, payer = signed["requirement"]["asset"], signed["payer"]
        since = max(head - rules.FINALITY_WINDOW_BLOCKS, 0)
        used = await transfer_logs.authorizations_used(self.w3, asset, payer, since, head)
        nonce = signed["authorization_nonce"].lower()
        for tx_hash, consumed in used.items():
            if consumed.lower() == nonce:
                return tx_hash, int((await self.w3.eth.get_transaction_receipt(HexStr(tx_hash)))["blockNumber"])
        return None

    async def check_recent(
        self, tenant_id: uuid.UUID, *, head: int, window: bool, reverse: bool, wallet_id: uuid.UUID | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's booked payments within the finality window of the head (`window`), else only those a reorg
        left waiting to land again."""
        since = head - rules.FINALITY_WINDOW_BLOCKS if window else None
        async with tenant_transaction(self.engine, tenant_id) as conn:
            booked = await db.booked_recent(conn, since_block=since, wallet_id=wallet_id)
        events: list[dict[str, Any]] = []
        for payment in booked:
            events += await self.check(tenant_id, payment, head=head, reverse=reverse)
        return events

    async def fill_gap(self, tenant_id: uuid.UUID | str, wallet_id: str, address: str, nonce: int, head: int) -> None:
        """`nonce` is missing below a wallet's waiting transactions: send the stored bytes of the payment that held
        it; if it is still missing after GAP_FILL_SECONDS, a no-op transaction takes it."""
        key = (address.lower(), nonce)
        first_seen = self._gap_seen.setdefault(key, time.monotonic())
        for k in [k for k in self._gap_seen if k[0] == key[0] and k[1] < nonce]:
            del self._gap_seen[k]  # filled: the wallet moved past it
        async with tenant_transaction(self.engine, tenant_id) as conn:
            holder = await db.holder_of_nonce(conn, address, nonce)
        if holder is not None:
            await self.check(tenant_id, holder, head=head, reverse=False)  # `payment.reorged` once, if it was booked
            await self._resend(holder)
        if time.monotonic() - first_seen < GAP_FILL_SECONDS or self._master_key is None:
            return
        tx_hash = await self._noop(tenant_id, uuid.UUID(wallet_id), address, nonce)
        self._gap_seen.pop(key, None)
        _count("nonce_filled")
        if activity.in_activity():
            activity.logger.warning("wallet %s: nonce %d filled with no-op %s", address, nonce, tx_hash)

    async def _noop(self, tenant_id: uuid.UUID | str, wallet_id: uuid.UUID, address: str, nonce: int) -> str:
        fees = await fee_fields(self.w3)
        chain_id = await self.w3.eth.chain_id
        assert self._master_key is not None
        async with tenant_transaction(self.engine, tenant_id) as conn:
            signer = await load_signer(conn, wallet_id, self._master_key)
            signed = signer.sign_transaction(
                {
                    "type": 2,
                    "chainId": chain_id,
                    "nonce": nonce,
                    "to": HexStr(to_checksum_address(address)),
                    "value": 0,
                    "gas": NOOP_GAS,
                    "maxFeePerGas": fees["maxFeePerGas"],
                    "maxPriorityFeePerGas": fees["maxPriorityFeePerGas"],
                }
            )
            del signer
            tx_hash = "0x" + bytes(signed.hash).hex()
            await append_audit(
                conn,
                tenant_id=tenant_id,
                actor="chain follower",
                channel=Channel.system,
                action=AuditAction.wallet_nonce_filled,
                subject_type=AuditSubject.wallet,
                subject_id=str(wallet_id),
                data={
                    "nonce": nonce,
                    "tx_hash": tx_hash,
                    "reason": "no stored transaction filled this nonce; later payments waited behind it",
                },
            )
        await send_stored(self.w3, bytes(signed.raw_transaction))
        return tx_hash
