"""The reconciler's I/O: list wallets, read the safe head, settle what closed unpaid, scan new blocks.

Every asset of the registry on this chain (paygent/assets.py) is scanned and compared on its own: its own
Transfer logs, checkpoint and ledger-against-chain comparison per wallet, beside the native coin's.

Each activity works on one wallet inside that wallet's tenant transaction(s); the decisions are the pure
rules of `paygent.domain.reconcile`. A scan commits one block range at a time together with its checkpoint,
so a crash loses at most the range in progress, and scanning it again writes nothing twice.
"""

from __future__ import annotations

import time
import uuid

from eth_typing import HexStr
from eth_utils import to_checksum_address
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError
from web3.exceptions import BlockNotFound

from activities.chain import as_hex
from activities.finality import Finality
from paygent.assets import Asset
from paygent.chain import transfer_logs
from paygent.chain.resend import first_landed, send_stored
from paygent.chain.rpc import async_web3
from paygent.chain.token import balance_of, token_abi
from paygent.db import finality as finality_db
from paygent.db import reconcile as db
from paygent.db import reconcile_mismatches as mismatches
from paygent.db.reconcile_schema import NATIVE
from paygent.db.tenancy import tenant_transaction
from paygent.domain import finality as finality_rules
from paygent.domain import reconcile as rules
from paygent.domain.payment import PaymentKind
from paygent.settings import Settings
from workflows import reconcile_types as r


def _finding(kind: str, tenant_id, subject: str, **data) -> r.Finding:
    return r.Finding(event_id=f"{kind}:{subject}", type=kind, tenant_id=str(tenant_id), data=data)


def _net(move, address: str) -> int:
    """What one Transfer log changed the wallet's balance by (a transfer to itself: nothing)."""
    out = move.sender.lower() == address.lower()
    into = move.receiver.lower() == address.lower()
    return (move.amount_atomic if into else 0) - (move.amount_atomic if out else 0)


class ReconcileActivities:
    """Register `ReconcileActivities(engine, settings).activities()` on a worker."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.w3 = async_web3(settings.rpc_url)
        self.assets: list[Asset] = settings.asset_registry().on_chain(settings.chain_id)
        self.finality = Finality(engine, self.w3)  # reads and reverses; no keys: the reconciler signs nothing

    def _assets(self) -> list[Asset]:
        """The tokens to scan; the scans run only for wallets `list_wallets` found, which needs one."""
        if not self.assets:
            raise ApplicationError("no token configured: nothing to reconcile", type="NoToken", non_retryable=True)
        return self.assets

    def activities(self) -> list:
        return [self.list_wallets, self.safe_head, self.settle_open, self.scan_wallet]

    @activity.defn(name=r.ACT_LIST_WALLETS)
    async def list_wallets(self) -> list[r.WalletRef]:
        """Tenants first, then each tenant's wallets in that tenant's own transaction."""
        if not self.assets:
            return []  # no token configured: nothing to reconcile
        async with self.engine.connect() as conn:
            tenants = await db.tenant_ids(conn)
        out: list[r.WalletRef] = []
        for tenant_id in tenants:
            async with tenant_transaction(self.engine, tenant_id) as conn:
                out += [
                    r.WalletRef(tenant_id=str(tenant_id), wallet_id=str(w.id), address=w.address)
                    for w in await db.tenant_wallets(conn, tenant_id)
                ]
        return out

    @activity.defn(name=r.ACT_SAFE_HEAD)
    async def safe_head(self) -> r.SafeHead:
        head = await self.w3.eth.get_block("latest")
        return r.SafeHead(
            block_number=rules.safe_head(head["number"], self.settings.confirmations_for(self.settings.chain_id)),
            timestamp=max(int(head["timestamp"]), int(time.time())),
        )

    # ---------------------------------------------------------------- payments left open
    @activity.defn(name=r.ACT_SETTLE_OPEN)
    async def settle_open(self, req: r.WalletRequest) -> r.WalletResult:
        """Payments seen paid but recorded otherwise; x402 authorizations that hold a reservation; transactions
        whose receipt wait gave up."""
        wallet_id, tenant_id = uuid.UUID(req.wallet.wallet_id), uuid.UUID(req.wallet.tenant_id)
        findings: list[r.Finding] = []
        async with tenant_transaction(self.engine, tenant_id) as conn:
            for payment in await db.paid_but_open(conn, wallet_id):
                action = await db.confirm_payment(
                    conn,
                    payment,
                    tx_hash=payment["moved_tx"],
                    block_number=payment["moved_block"],
                    source="transfer log",
                )
                if action:
                    findings.append(
                        _finding(
                            action,
                            tenant_id,
                            str(payment["id"]),
                            payment_id=str(payment["id"]),
                            tx_hash=payment["moved_tx"],
                            block_number=payment["moved_block"],
                        )
                    )
            held = await db.held_authorizations(conn, wallet_id)
            given_up = await db.receipts_given_up(conn, wallet_id)
        for payment in held:
            findings += await self._check_authorization(tenant_id, payment, req.safe_head)
        for payment, attempts in given_up:
            findings += await self._check_receipt(tenant_id, req.wallet.address, payment, attempts, req.safe_head)
        findings += await self._check_booked(tenant_id, wallet_id)
        return r.WalletResult(findings=findings)

    async def _check_booked(self, tenant_id: uuid.UUID, wallet_id: uuid.UUID) -> list[r.Finding]:
        """The backup of the chain follower: payments booked near the head still in the chain (or re-sent, or
        moved), and those that can never land reversed (`reorged_out`, an open mismatch), each published."""
        head = int(await self.w3.eth.block_number)
        events = await self.finality.check_recent(tenant_id, head=head, window=True, reverse=True, wallet_id=wallet_id)
        findings = []
        for e in events:
            kind, data = e["type"], {k: v for k, v in e.items() if k != "type"}
            subject = f"{wallet_id}:{data['mismatch_id']}" if kind == r.MISMATCH else f"{data['payment_id']}:{head}"
            findings.append(_finding(kind, tenant_id, subject, **data))
        return findings

    async def _check_authorization(self, tenant_id: uuid.UUID, payment, head: r.SafeHead) -> list[r.Finding]:
        signed = payment["details"]["signed"]
        token = self.w3.eth.contract(address=to_checksum_address(signed["requirement"]["asset"]), abi=token_abi())
        nonce = bytes.fromhex(signed["authorization_nonce"].removeprefix("0x"))
        used = bool(await token.functions.authorizationState(to_checksum_address(signed["payer"]), nonce).call())
        verdict = rules.authorization_verdict(used=used, valid_before=int(signed["valid_before"]), now=head.timestamp)
        if verdict != rules.AuthorizationVerdict.EXPIRED:
            return []  # open: keep holding; settled: the scan confirms it once its block is deep enough
        async with tenant_transaction(self.engine, tenant_id) as conn:
            done = await db.close_payment(
                conn,
                payment,
                status=None,
                action=r.AUTHORIZATION_EXPIRED,
                reason="the signed authorization expired unused",
                data={"valid_before": signed["valid_before"]},
            )
        return (
            [
                _finding(
                    r.AUTHORIZATION_EXPIRED,
                    tenant_id,
                    str(payment["id"]),
                    payment_id=str(payment["id"]),
                    status=payment["status"],
                    valid_before=signed["valid_before"],
                )
            ]
            if done
            else []
        )

    async def _check_receipt(
        self, tenant_id: uuid.UUID, address: str, payment, attempts: list, head: r.SafeHead
    ) -> list[r.Finding]:
        attempt, receipt = await first_landed(self.w3, attempts)
        pid = str(payment["id"])
        if receipt is None:
            mined_nonce = await self.w3.eth.get_transaction_count(to_checksum_address(address), "latest")
            if attempts and mined_nonce > attempts[-1]["nonce"] and (await first_landed(self.w3, attempts))[1] is None:
                async with tenant_transaction(self.engine, tenant_id) as conn:
                    done = await db.close_payment(
                        conn,
                        payment,
                        status="failed",
                        action="payment.failed",
                        reason="NonceConflict: its nonce was used by another transaction",
                    )
                return [_finding("payment.failed", tenant_id, pid, payment_id=pid)] if done else []
            for a in attempts:  # the node may have dropped it: the same signed bytes, never new ones
                await send_stored(self.w3, a["raw"])
            return []
        if receipt["blockNumber"] > head.block_number:
            return []  # landed, not yet deep enough
        async with tenant_transaction(self.engine, tenant_id) as conn:
            if receipt["status"] == 1:
                action = await db.confirm_payment(
                    conn, payment, tx_hash=attempt["tx_hash"], block_number=receipt["blockNumber"], source="receipt"
                )
            else:
                done = await db.close_payment(
                    conn,
                    payment,
                    status="failed",
                    action="payment.failed",
                    reason="TransferReverted: reverted on chain",
                    data={"tx_hash": attempt["tx_hash"]},
                )
                action = "payment.failed" if done else None
        return (
            [
                _finding(
                    action,
                    tenant_id,
                    pid,
                    payment_id=pid,
                    tx_hash=attempt["tx_hash"],
                    block_number=receipt["blockNumber"],
                )
            ]
            if action
            else []
        )

    # ---------------------------------------------------------------- the block scan
    @activity.defn(name=r.ACT_SCAN)
    async def scan_wallet(self, req: r.WalletRequest) -> r.WalletResult:
        """Token Transfer logs from and to the wallet over (checkpoint, safe head], then its native balance.

        Only logs are read for old blocks: nodes prune old state (anvil answers `BlockOutOfRangeError` for a
        balance far back), so balances are read at the safe head only, and a range's checkpoint balance is the
        previous one plus the range's movements."""
        wallet_id, tenant_id = uuid.UUID(req.wallet.wallet_id), uuid.UUID(req.wallet.tenant_id)
        head = req.safe_head.block_number
        # A checkpoint whose block left the chain (a reorg deeper than the depth): the wallet is scanned again
        # from below it, every asset and the native coin alike (their movements share the blocks).
        async with tenant_transaction(self.engine, tenant_id) as conn:
            marks = [
                (
                    (await db.checkpoint(conn, wallet_id, a.symbol))[0],
                    await finality_db.checkpoint_hash(conn, wallet_id, a.symbol),
                )
                for a in self._assets()
            ]
        for start, stamped in marks:
            if start >= 0 and (start > head or (stamped and stamped != await self._hash(start))):
                await self._rewind(req.wallet, tenant_id, wallet_id, start, head)
                break
        opening = self.settings.reconcile_start_block - 1
        result = r.WalletResult()
        if head >= 0 and opening >= 0:
            await self._native_opening(tenant_id, wallet_id, req.wallet.address, opening, head)
        for asset in self._assets():
            async with tenant_transaction(self.engine, tenant_id) as conn:
                start, balance = await db.checkpoint(conn, wallet_id, asset.symbol)
            # The first scan on a chain with earlier history starts with an opening deposit; a wallet scanned
            # before keeps its checkpoint (a second opening deposit would count its funds twice). Per asset: a
            # token registered later gets its own opening.
            if start == -1 and start < opening <= head:
                balance = await self._record_opening(req.wallet, tenant_id, wallet_id, asset, opening, head)
                start = opening
            blocks = 0
            for first, last in rules.scan_ranges(start, head, self.settings.reconcile_batch_blocks):
                activity.heartbeat(first)
                findings, balance = await self._scan_range(
                    req.wallet, tenant_id, wallet_id, asset, first, last, balance, read_balance=last == head
                )
                result.findings += findings
                blocks += last - first + 1
            result.blocks_scanned = max(result.blocks_scanned, blocks)  # the same blocks, read once per asset
        if head >= 0:
            async with tenant_transaction(self.engine, tenant_id) as conn:
                await self._record_native(conn, req.wallet, tenant_id, wallet_id, head)
                await finality_db.stamp_checkpoints(conn, wallet_id, head, await self._hash(head))
                for symbol in [a.symbol for a in self._assets()] + [NATIVE]:
                    result.findings += await self._compare(conn, tenant_id, wallet_id, symbol, req.safe_head)
        return result

    async def _token_balance_at(self, asset: Asset, address: str, block: int) -> int:
        """The wallet's balance of `asset` at `block`; 0 before the token existed (a rewind may reach below the
        block that deployed a token registered later, where a call answers no data)."""
        if block < 0 or not await self.w3.eth.get_code(to_checksum_address(asset.address), block_identifier=block):
            return 0
        return await balance_of(self.w3, asset.address, address, block=block)

    async def _hash(self, block: int) -> str | None:
        try:
            return as_hex((await self.w3.eth.get_block(block))["hash"])
        except BlockNotFound:
            return None  # the chain is shorter now than it was

    async def _rewind(
        self, wallet: r.WalletRef, tenant_id: uuid.UUID, wallet_id: uuid.UUID, start: int, head: int
    ) -> None:
        """The checkpoint's block left the chain (a reorg deeper than the depth): scan again from a window below
        it, so what the scan recorded from the old chain is read from the new one (every asset's checkpoint)."""
        to = finality_rules.rewind_to(checkpoint=start, safe_head=head, floor=self.settings.reconcile_start_block - 1)
        balances = {
            NATIVE: (
                await self.w3.eth.get_balance(to_checksum_address(wallet.address), block_identifier=to)
                if to >= 0
                else 0
            )
        }
        for asset in self._assets():
            balances[asset.symbol] = await self._token_balance_at(asset, wallet.address, to)
        async with tenant_transaction(self.engine, tenant_id) as conn:
            forgotten = await finality_db.rewind(conn, wallet_id, to_block=to, balances=balances)
        activity.logger.warning(
            "wallet %s: checkpoint block %d left the chain; scanning again from %d (%d movements forgotten)",
            wallet.address,
            start,
            to + 1,
            forgotten,
        )

    @staticmethod
    async def _compare(conn, tenant_id: uuid.UUID, wallet_id: uuid.UUID, asset: str, head: r.SafeHead) -> list:
        """Ledger against chain at the asset's checkpoint: every cause of a difference opens a mismatch once
        (audited, published), and one that is gone resolves."""
        found = await mismatches.comparison(conn, wallet_id, asset, now=head.timestamp)
        if found is None:
            return []
        return [
            _finding(change.action, tenant_id, f"{wallet_id}:{change.mismatch_id}", **change.data)
            for change in await mismatches.record(conn, tenant_id, wallet_id, found)
        ]

    async def _record_opening(
        self, wallet: r.WalletRef, tenant_id: uuid.UUID, wallet_id: uuid.UUID, asset: Asset, block: int, head: int
    ) -> int:
        """What the wallet held of `asset` up to `block` counts as one deposit: today's balance less what moved
        since (logs only). Returns the token balance at `block`."""
        moved = 0
        for first, last in rules.scan_ranges(block, head, self.settings.reconcile_batch_blocks):
            activity.heartbeat(first)
            for move in await transfer_logs.transfers(self.w3, asset.address, wallet.address, first, last):
                moved += _net(move, wallet.address)
        token_balance = await balance_of(self.w3, asset.address, wallet.address, block=head) - moved
        async with tenant_transaction(self.engine, tenant_id) as conn:
            await self._opening_deposit(conn, tenant_id, wallet_id, asset.symbol, token_balance, block)
        return token_balance

    async def _native_opening(
        self, tenant_id: uuid.UUID, wallet_id: uuid.UUID, address: str, opening: int, head: int
    ) -> None:
        """On a chain with earlier history, native coin is counted from the safe head of the wallet's first scan
        on: what it held then is one opening deposit (once: a wallet scanned before keeps its checkpoint)."""
        async with tenant_transaction(self.engine, tenant_id) as conn:
            start, _ = await db.checkpoint(conn, wallet_id, NATIVE)
            if not (start == -1 and start < opening <= head):
                return
            native = await self.w3.eth.get_balance(to_checksum_address(address), block_identifier=head)
            await self._opening_deposit(conn, tenant_id, wallet_id, NATIVE, native, head)

    @staticmethod
    async def _opening_deposit(conn, tenant_id: uuid.UUID, wallet_id: uuid.UUID, asset: str, amount: int, at: int):
        await db.record_movement(
            conn,
            tenant_id=tenant_id,
            wallet_id=wallet_id,
            asset=asset,
            block_number=at,
            tx_hash=None,
            log_index=None,
            kind=rules.Movement.DEPOSIT,
            amount_atomic=amount,
            details={"opening_balance": True},
        )
        await db.save_checkpoint(
            conn, tenant_id=tenant_id, wallet_id=wallet_id, asset=asset, block_number=at, chain_balance=amount
        )

    async def _scan_range(
        self,
        wallet: r.WalletRef,
        tenant_id: uuid.UUID,
        wallet_id: uuid.UUID,
        asset: Asset,
        first: int,
        last: int,
        balance: int,
        *,
        read_balance: bool,
    ) -> tuple[list[r.Finding], int]:
        moves = await transfer_logs.transfers(self.w3, asset.address, wallet.address, first, last)
        used = await transfer_logs.authorizations_used(self.w3, asset.address, wallet.address, first, last)
        for move in moves:
            balance += _net(move, wallet.address)
        if read_balance:  # the chain's own figure at the safe head: a movement without a log would show here
            balance = await balance_of(self.w3, asset.address, wallet.address, block=last)
        findings: list[r.Finding] = []
        async with tenant_transaction(self.engine, tenant_id) as conn:
            for move in moves:
                findings += await self._record_transfer(conn, wallet, tenant_id, wallet_id, asset.symbol, move, used)
            await db.save_checkpoint(
                conn,
                tenant_id=tenant_id,
                wallet_id=wallet_id,
                asset=asset.symbol,
                block_number=last,
                chain_balance=balance,
            )
        return findings, balance

    async def _record_transfer(
        self, conn, wallet: r.WalletRef, tenant_id, wallet_id, asset: str, move, used: dict[str, str]
    ) -> list[r.Finding]:
        """The log's movements (`rules.legs`), and the payment it executed confirmed if its workflow could not."""
        payment = None
        outgoing = move.sender.lower() == wallet.address.lower()
        if outgoing:
            payment = await db.payment_by_tx(conn, wallet_id, move.tx_hash)
            if payment is None and move.tx_hash in used:
                payment = await db.payment_by_authorization(conn, wallet_id, used[move.tx_hash])
        elif move.receiver.lower() == wallet.address.lower():  # a swap's output leg is the swap's, not a deposit
            payment = await db.payment_by_tx(conn, wallet_id, move.tx_hash)
            if payment is not None and payment["kind"] != PaymentKind.swap:
                payment = None
        legs = rules.legs(
            sender=move.sender, receiver=move.receiver, wallet=wallet.address, matched_payment=payment is not None
        )
        for kind, sign in legs:
            await db.record_movement(
                conn,
                tenant_id=tenant_id,
                wallet_id=wallet_id,
                asset=asset,
                block_number=move.block_number,
                tx_hash=move.tx_hash,
                log_index=move.log_index,
                kind=kind,
                amount_atomic=sign * move.amount_atomic,
                counterparty=move.receiver if sign < 0 else move.sender,
                payment_id=payment["id"] if payment else None,
            )
        if payment is None or not outgoing:
            return []  # an unmatched transfer out is judged by the balance comparison (`_compare`)
        action = await db.confirm_payment(
            conn, payment, tx_hash=move.tx_hash, block_number=move.block_number, source="transfer log"
        )
        if not action:
            return []
        pid = str(payment["id"])
        return [_finding(action, tenant_id, pid, payment_id=pid, tx_hash=move.tx_hash, block_number=move.block_number)]

    async def _record_native(self, conn, wallet: r.WalletRef, tenant_id, wallet_id, last: int) -> None:
        """Native coin since its checkpoint: gas of the wallet's own payment transactions explains decreases;
        the rest is a deposit (increase) or a mismatch (decrease)."""
        native_block, previous = await db.checkpoint(conn, wallet_id, NATIVE)
        if native_block >= last:
            return  # scanned again (after a crash, or a checkpoint moved back): counted already
        first = native_block + 1
        balance = await self.w3.eth.get_balance(to_checksum_address(wallet.address), block_identifier=last)
        explained = 0
        for tx_hash in await db.wallet_tx_hashes(conn, wallet_id, first, last):
            try:
                receipt = await self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
            except Exception:  # not mined (yet): it spent nothing
                continue
            if not (first <= receipt["blockNumber"] <= last):
                continue
            fee = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
            explained -= fee
            await db.record_movement(
                conn,
                tenant_id=tenant_id,
                wallet_id=wallet_id,
                asset=NATIVE,
                block_number=receipt["blockNumber"],
                tx_hash=tx_hash.lower(),
                log_index=None,
                kind=rules.Movement.GAS,
                amount_atomic=-fee,
            )
        rest = rules.unexplained_native(previous_balance=previous, balance=balance, explained=explained)
        if rest:  # a decrease is judged by the balance comparison (`_compare`), with the range it happened in
            await db.record_movement(
                conn,
                tenant_id=tenant_id,
                wallet_id=wallet_id,
                asset=NATIVE,
                block_number=last,
                tx_hash=None,
                log_index=None,
                kind=rules.Movement.DEPOSIT if rest > 0 else rules.Movement.MISMATCH,
                amount_atomic=rest,
                details={"from_block": first, "to_block": last},
            )
        await db.save_checkpoint(
            conn, tenant_id=tenant_id, wallet_id=wallet_id, asset=NATIVE, block_number=last, chain_balance=balance
        )
