"""The chain follower: one activity per chain that completes every payment's receipt wait.

A payment's receipt wait (activities/chain.py `await_receipt`) reads the receipt once; unless it is already
deep enough (a chain that mines at once, depth 1), it registers itself in `receipt_waits` and completes
asynchronously. This activity, run by the chain's long-lived workflow (workflows/chain.py), follows the chain
and answers those waits with the outcomes the per-payment poller had:

- **Blocks.** Each pass reads the head block; every block since the last pass is read once (its transaction
  hashes, its parent hash). A wait is checked against the node (`eth_getTransactionReceipt` for its attempts)
  when one of its hashes appears in a new block, the first time this run sees it, and after a reorg.
- **Depth and reorgs within it.** A wait completes when a receipt is `confirmations` deep, read again at that
  depth: a receipt that moved or vanished in a reorg before the depth is waited for again (and its bytes are
  re-sent). A reorg is noticed by a parent hash that does not match, a head hash that changed at the same
  height, or a head that went back; then every wait is checked again.
- **Not mined.** The stored bytes of every attempt are re-sent (2 s, backing off to 30 s); a transaction not
  mined PAYGENT_REPLACE_AFTER_SECONDS after its latest attempt is replaced (same nonce, fees +12.5%); a nonce
  used by a transaction that is none of the payment's fails the wait `NonceConflict`; after
  PAYGENT_RECEIPT_WAIT_SECONDS the payment is marked for the reconciler and the wait completes `pending`.
- **Answers.** `complete`/`fail` with the registered task token; if that attempt is over (it timed out and was
  retried), the current attempt by workflow id + activity id. The row is deleted once answered.
- **Lost registrations.** A worker that dies between starting a wait and committing its row leaves the
  attempt running with no row: every ORPHAN_SCAN_SECONDS the follower fails such attempts (retryable), and the
  retry registers again.

The follower keeps nothing durable of its own: a new attempt (after a crash, on another worker) starts by
checking every wait once, so no receipt is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from eth_utils import to_checksum_address
from temporalio import activity
from temporalio.client import AsyncActivityHandle, Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.chain import ChainActivities, as_hex
from paygent.chain.resend import first_landed, send_stored
from paygent.db import finality as finality_db
from paygent.db import receipt_waits as waits_db
from paygent.db.reconcile import tenant_ids
from paygent.db.tenancy import tenant_scope, tenant_transaction
from paygent.domain.errors import ErrorType
from paygent.domain.finality import gap_nonce
from paygent.domain.payment import PaymentRequest
from workflows import chain_types as ct
from workflows import payment_types as pt

POLL_SECONDS = 0.2  # how often the head is read while waits are open
IDLE_POLL_SECONDS = 1.0  # ... and while none are
MAX_CATCHUP_BLOCKS = 256  # more new blocks than this in one pass: check every wait instead of reading blocks
RESEND_FIRST, RESEND_BACKOFF, RESEND_MAX = 2.0, 1.5, 30.0
ORPHAN_SCAN_SECONDS, ORPHAN_AFTER_SECONDS = 10.0, 10.0
PARALLEL_WAITS = 16
KEEP_BLOCK_HASHES = 512
FINALITY_CHECK_SECONDS = 2.0  # how often payments a reorg left waiting to land again are re-sent


class ChainFollower:
    """Register `ChainFollower(chain_activities).follow` on a worker."""

    def __init__(self, chain: ChainActivities) -> None:
        self.chain = chain

    @activity.defn(name=ct.ACT_FOLLOW)
    async def follow(self, inp: ct.FollowInput) -> ct.FollowResult:
        answered = await self.chain.w3.eth.chain_id
        if answered != inp.chain_id:
            raise ApplicationError(
                f"the node at the configured RPC URL is chain {answered}, not {inp.chain_id}",
                type=ErrorType.chain_mismatch,
                non_retryable=True,
            )
        activity.logger.info("following chain %s for task queue %s", inp.chain_id, inp.task_queue)
        return await _Run(self.chain, activity.client(), inp).loop()


class _Run:
    """One attempt of the follower: what it has seen lives here and dies with it."""

    def __init__(self, chain: ChainActivities, client: Client, inp: ct.FollowInput) -> None:
        self.chain, self.w3, self.client, self.inp = chain, chain.w3, client, inp
        self.result = ct.FollowResult()
        self.last: int | None = None  # the head at the last pass
        self.hashes: dict[int, str] = {}  # block number -> hash, of the blocks this run has read
        self.checked: set[str] = set()  # payments whose receipts this run has read at least once
        self.landed: dict[str, tuple[Any, Any]] = {}  # payment -> (attempt, receipt) seen mined, not yet deep
        self.next_send: dict[str, float] = {}
        self.send_gap: dict[str, float] = {}
        self.answers: dict[str, Callable[[AsyncActivityHandle], Awaitable[None]]] = {}  # decided, not yet delivered
        self.next_orphan_scan = 0.0
        self.finality = chain.finality()
        self.reorged = True  # a reorg may have happened while no follower ran: check the window on the first pass
        self.next_finality = 0.0
        self.waiting_nonces: dict[str, set[int]] = {}  # wallet -> nonces of its open waits, this pass
        self.gaps: set[str] = set()  # wallets whose gap was handled this pass

    async def loop(self) -> ct.FollowResult:
        stop = time.monotonic() + self.inp.run_seconds
        while time.monotonic() < stop:
            if activity.is_worker_shutdown():  # hand over now rather than at the heartbeat timeout
                raise ApplicationError(
                    "the worker is shutting down: another one follows", type=ErrorType.worker_stopping
                )
            activity.heartbeat(self.result.model_dump())
            open_waits = 0
            try:
                open_waits = await self.one_pass()
                if time.monotonic() >= self.next_orphan_scan:
                    await self.fail_unregistered()
                    self.next_orphan_scan = time.monotonic() + ORPHAN_SCAN_SECONDS
            except Exception as err:  # the node or the database is away: keep following, say why
                activity.logger.warning(
                    "chain %s follower pass failed: %s: %s", self.inp.chain_id, type(err).__name__, err
                )
                self.last = None  # check everything again once they answer
                await asyncio.sleep(1.0)
            self.result.passes += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    activity.wait_for_worker_shutdown(), POLL_SECONDS if open_waits else IDLE_POLL_SECONDS
                )
        return self.result

    # ------------------------------------------------------------------ one pass
    async def one_pass(self) -> int:
        head_block = await self.w3.eth.get_block("latest")
        head = int(head_block["number"])
        new_txs, full = await self.new_blocks(head_block)
        if self.reorged:  # booked payments first: their nonces are below those of the open waits
            await self.check_booked(head, window=True)
        waits = await self.load()
        live = {w.payment_id for w in waits}
        for state in (self.landed, self.next_send, self.send_gap, self.answers):
            for pid in [p for p in state if p not in live]:
                del state[pid]
        self.checked &= live
        mined_nonces: dict[str, int] = {}
        gate = asyncio.Semaphore(PARALLEL_WAITS)

        async def work(w: waits_db.Wait) -> None:
            async with gate:
                activity.heartbeat(self.result.model_dump())
                try:
                    await self.work(w, head, new_txs, full, mined_nonces)
                except Exception as err:  # one payment's trouble never stops the others
                    activity.logger.warning("receipt wait of payment %s: %s: %s", w.payment_id, type(err).__name__, err)

        self.waiting_nonces, self.gaps = {}, set()
        for w in waits:
            wallet = str(PaymentRequest.model_validate(w.request).wallet_address).lower()
            self.waiting_nonces.setdefault(wallet, set()).update(int(a["nonce"]) for a in w.attempts)
        await asyncio.gather(*(work(w) for w in waits))
        if time.monotonic() >= self.next_finality:
            await self.check_booked(head, window=False)
        return len(waits)

    async def check_booked(self, head: int, *, window: bool) -> None:
        """After a reorg: every payment booked within the finality window of the head is read again (its
        transaction may have left the chain: re-send it). Between reorgs, only those still waiting to land
        again. Reversals are the reconciler's (its findings become webhook events)."""
        async with self.chain.engine.connect() as conn:  # between reorgs: only tenants with something pending
            tenants = await (tenant_ids(conn) if window else finality_db.reorg_pending_tenants(conn))
        for tenant in tenants:
            try:
                await self.finality.check_recent(tenant, head=head, window=window, reverse=False)
            except Exception as err:  # one tenant's trouble never stops the others
                activity.logger.warning("finality check of tenant %s: %s: %s", tenant, type(err).__name__, err)
        self.reorged, self.next_finality = False, time.monotonic() + FINALITY_CHECK_SECONDS

    async def new_blocks(self, head_block) -> tuple[set[str], bool]:
        """Transaction hashes of the blocks since the last pass, and whether every wait must be checked again
        (first pass, a reorg, a gap too wide to read block by block)."""
        head, head_hash = int(head_block["number"]), as_hex(head_block["hash"])
        last, self.last = self.last, head
        if (
            last is None
            or head < last
            or head - last > MAX_CATCHUP_BLOCKS
            or (head == last and self.hashes.get(head) != head_hash)
        ):
            self.reorged = self.reorged or last is not None  # any of these but the first pass may be a reorg
            self.hashes = {head: head_hash}
            return set(), True
        txs: set[str] = set()
        full = False
        for n in range(last + 1, head + 1):
            block = head_block if n == head else await self.w3.eth.get_block(n)
            parent = self.hashes.get(n - 1)
            if parent is not None and as_hex(block["parentHash"]) != parent:
                full = self.reorged = True  # a block we read is no longer in the chain
            self.hashes[n] = as_hex(block["hash"])
            txs.update(as_hex(h) for h in block["transactions"])
        self.result.blocks += head - last
        for n in [n for n in self.hashes if n < head - KEEP_BLOCK_HASHES]:
            del self.hashes[n]
        return txs, full

    async def load(self) -> list[waits_db.Wait]:
        async with self.chain.engine.connect() as conn:
            tenants = await waits_db.tenants_with_waits(conn, self.inp.chain_id, self.inp.task_queue)
        out: list[waits_db.Wait] = []
        for tenant in tenants:
            async with tenant_transaction(self.chain.engine, tenant) as conn:
                out += await waits_db.tenant_waits(conn, self.inp.chain_id, self.inp.task_queue)
        return out

    # ------------------------------------------------------------------ one wait
    async def work(
        self, w: waits_db.Wait, head: int, new_txs: set[str], full: bool, mined_nonces: dict[str, int]
    ) -> None:
        pid = w.payment_id
        if pid in self.answers:  # decided on an earlier pass; delivering it failed then
            await self.deliver(w, self.answers[pid])
            return
        if not w.attempts:
            return  # a registration is always after signing: the attempts' commit is on its way
        depth_needed = self.chain.confirmations
        fresh = False
        if full or pid not in self.checked or any(a["tx_hash"] in new_txs for a in w.attempts):
            await self.read_receipt(w)
            fresh = True
        if pid in self.landed:
            attempt, receipt = self.landed[pid]
            if head - int(receipt["blockNumber"]) + 1 < depth_needed:
                return  # mined, not deep enough yet
            if not fresh:  # deep enough on an earlier reading: read it again at this depth (a reorg may have moved it)
                await self.read_receipt(w)
                if pid in self.landed and head - int(self.landed[pid][1]["blockNumber"]) + 1 < depth_needed:
                    return
            if pid in self.landed:
                attempt, receipt = self.landed[pid]
                result = await self.chain.result(attempt["tx_hash"], receipt)
                self.result.completed += 1
                await self.decide(w, _complete(result))
                return
            activity.logger.warning("payment %s: its receipt left the chain before %d blocks", pid, depth_needed)
            self.next_send[pid] = 0.0  # send the same bytes again now
        await self.not_mined(w, mined_nonces)

    async def read_receipt(self, w: waits_db.Wait) -> None:
        attempt, receipt = await first_landed(self.w3, w.attempts)
        self.checked.add(w.payment_id)
        if receipt is None:
            if self.landed.pop(w.payment_id, None) is not None:  # mined, then gone in a reorg: send it again now
                self.next_send[w.payment_id] = 0.0
                self.send_gap.pop(w.payment_id, None)
        else:
            self.landed[w.payment_id] = (attempt, receipt)

    async def not_mined(self, w: waits_db.Wait, mined_nonces: dict[str, int]) -> None:
        pid, latest = w.payment_id, w.attempts[-1]
        req = PaymentRequest.model_validate(w.request)
        now = datetime.now(UTC)
        if now - w.attempts[0]["created_at"] >= timedelta(seconds=self.chain.receipt_wait_seconds):
            with tenant_scope(w.tenant_id):
                gave_up = await self.chain.give_up(req, latest)
            self.result.gave_up += 1
            await self.decide(w, _complete(gave_up))
            return
        if time.monotonic() < self.next_send.get(pid, 0.0):
            return
        for a in w.attempts:  # keep every attempt known to the node; the nonce lets only one land
            await send_stored(self.w3, a["raw"])
        gap = min(self.send_gap.get(pid, RESEND_FIRST / RESEND_BACKOFF) * RESEND_BACKOFF, RESEND_MAX)
        self.send_gap[pid], self.next_send[pid] = gap, time.monotonic() + gap
        wallet = to_checksum_address(req.wallet_address)
        if wallet not in mined_nonces:
            mined_nonces[wallet] = await self.w3.eth.get_transaction_count(wallet, "latest")
        missing = gap_nonce(
            mined_nonce=mined_nonces[wallet], waiting_nonces=self.waiting_nonces.get(wallet.lower(), set())
        )
        if missing is not None and wallet not in self.gaps:
            self.gaps.add(wallet)  # once a pass per wallet: re-send what held the nonce, or fill it
            await self.finality.fill_gap(w.tenant_id, req.wallet_id, wallet, missing, await self.w3.eth.block_number)
        if mined_nonces[wallet] > latest["nonce"] and (await first_landed(self.w3, w.attempts))[1] is None:
            self.result.failed += 1
            await self.decide(
                w,
                _fail(
                    ApplicationError(
                        f"nonce {latest['nonce']} was used by a transaction that is not this payment's",
                        type=ErrorType.nonce_conflict,
                        non_retryable=True,
                    )
                ),
            )
            return
        if now - latest["created_at"] >= timedelta(seconds=self.chain.replace_after_seconds):
            with tenant_scope(w.tenant_id):
                if await self.chain.replace(req, latest):
                    self.send_gap.pop(pid, None)  # the next pass loads the new attempt and sends it

    # ------------------------------------------------------------------ answers
    async def decide(self, w: waits_db.Wait, answer: Callable[[AsyncActivityHandle], Awaitable[None]]) -> None:
        self.answers[w.payment_id] = answer
        await self.deliver(w, answer)

    async def deliver(self, w: waits_db.Wait, answer: Callable[[AsyncActivityHandle], Awaitable[None]]) -> None:
        """Answer the registered attempt; if it is over, the current one. Kept for the next pass while the
        activity is between attempts; dropped when its workflow has closed."""
        try:
            await answer(self.client.get_async_activity_handle(task_token=w.task_token))
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            try:
                await answer(
                    self.client.get_async_activity_handle(
                        workflow_id=w.workflow_id, run_id=None, activity_id=w.activity_id
                    )
                )
            except RPCError as again:
                if again.status != RPCStatusCode.NOT_FOUND:
                    raise
                if await self.workflow_running(w.workflow_id):
                    return  # between attempts: the retry registers again and the next pass answers it
        async with tenant_transaction(self.chain.engine, w.tenant_id) as conn:
            await waits_db.finish(conn, w.payment_id, w.task_token)
        self.answers.pop(w.payment_id, None)

    async def workflow_running(self, workflow_id: str) -> bool:
        try:
            described = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False  # gone past its retention
            raise
        return described.status == WorkflowExecutionStatus.RUNNING

    async def fail_unregistered(self) -> None:
        """Fail (retryable) the running receipt waits that have no row: their worker died before registering."""
        async with self.chain.engine.connect() as conn:
            tenants = await tenant_ids(conn)
        for tenant in tenants:
            async with tenant_transaction(self.chain.engine, tenant) as conn:
                lost = await waits_db.unregistered(conn, self.inp.chain_id, ORPHAN_AFTER_SECONDS)
            for pid, workflow_id in lost:
                handle = self.client.get_async_activity_handle(
                    workflow_id=workflow_id, run_id=None, activity_id=ct.RECEIPT_WAIT_ACTIVITY_ID
                )
                try:
                    await handle.fail(
                        ApplicationError(
                            "the receipt wait's worker died before registering it: register again",
                            type=ErrorType.receipt_wait_lost,
                        )
                    )
                except RPCError as err:
                    if err.status != RPCStatusCode.NOT_FOUND:
                        raise
                    continue  # not started yet, or a wait of a payment from before the follower (it polls)
                activity.logger.warning("payment %s: its receipt wait had no registration; retried", pid)


def _complete(result: pt.ReceiptResult) -> Callable[[AsyncActivityHandle], Awaitable[None]]:
    async def send(handle: AsyncActivityHandle) -> None:
        await handle.complete(result)

    return send


def _fail(error: ApplicationError) -> Callable[[AsyncActivityHandle], Awaitable[None]]:
    async def send(handle: AsyncActivityHandle) -> None:
        await handle.fail(error)

    return send
