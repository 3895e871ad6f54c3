"""The rollback table: depths 1 to 2N (N = the confirmation depth) at each stage of a payment (submitted: mined,
not yet N deep; confirmed: booked at depth N; settled: the reconciler has scanned it too). After each rollback
and re-mining: the payment executed exactly once, and ledger == chain at the safe head, or an open mismatch names
the payment. One wallet runs the whole table, so a deep rollback also takes earlier cells' payments with it:
they must come back too. Printed as `depth x stage -> outcome`."""

from __future__ import annotations

import time

from web3.exceptions import TransactionNotFound

from tests.api.helpers import funded_wallet, new_recipient, transfers_to
from tests.follower.reorg_helpers import (
    confirm,
    in_pool,
    ledger_or_mismatch,
    mine,
    pay_and_mine,
    reorg_stack,
    row,
    settle,
    until,
)
from tests.reconcile.helpers import audit_actions

DEPTH = 2
STAGES = ("submitted", "confirmed", "settled")


async def test_rollback_table(http, dev, db_engine, temporal_env, app_settings):
    wallet = await funded_wallet(http, dev, app_settings, 100)
    table: dict[tuple[int, str], str] = {}
    started = time.monotonic()
    async with reorg_stack(app_settings, temporal_env, DEPTH) as (settings, api, w3):
        for stage in STAGES:
            for depth in range(1, 2 * DEPTH + 1):
                to = new_recipient()
                pid, tx_hash, block = await pay_and_mine(api, dev, db_engine, w3, wallet["id"], to)
                if stage != "submitted":
                    await confirm(api, dev, w3, pid, DEPTH)
                if stage == "settled":
                    await settle(http, dev, temporal_env, settings.task_queue, wallet["id"], block)
                head = int(await w3.eth.block_number)
                removed = block > head - depth
                await w3.provider.make_request("anvil_rollback", [depth])
                if removed:
                    await until(
                        lambda tx_hash=tx_hash: in_pool(w3, tx_hash),
                        30,
                        f"{depth} x {stage}: the same bytes sent again",
                    )
                await mine(w3, DEPTH)

                async def landed(
                    pid=pid, stage=stage, tx_hash=tx_hash
                ) -> bool:  # re-sent bytes of several payments land in turn
                    if (await row(db_engine, pid))["status"] == "confirmed" and await _mined(w3, tx_hash):
                        return True
                    await mine(w3, 1)
                    return False

                await until(landed, 60, f"{depth} x {stage}: confirmed, in the chain", pause=0.3)
                receipt = await w3.eth.get_transaction_receipt(tx_hash)

                async def recorded(pid=pid, receipt=receipt) -> bool:
                    return (await row(db_engine, pid))["block_number"] == receipt["blockNumber"]

                await until(recorded, 30, f"{depth} x {stage}: the block it landed in recorded")
                assert await transfers_to(settings.rpc_url, settings.token_address, to) == 1, (depth, stage)
                judged = await ledger_or_mismatch(
                    http, dev, temporal_env, settings.task_queue, wallet["id"], pid, w3, DEPTH
                )
                actions = await audit_actions(db_engine, "payment", pid)
                events = [a.split(".", 1)[1] for a in actions if a in ("payment.reorged", "payment.reincluded")]
                status = (await row(db_engine, pid))["status"]
                if not removed:
                    what = "its block kept"
                elif stage == "submitted":
                    what = "re-sent (same bytes), confirmed once"
                else:
                    what = f"re-sent (same bytes), {' + '.join(events) or 'no event'}, still {status}"
                table[(depth, stage)] = f"{what}; executed once; {judged}"
    took = time.monotonic() - started
    lines = [
        f"  {d} x {s:<9} -> {o}" for (d, s), o in sorted(table.items(), key=lambda k: (STAGES.index(k[0][1]), k[0][0]))
    ]
    print(f"\nrollback table (confirmations {DEPTH}; {took:.0f}s, loaded machine):\n" + "\n".join(lines))
    assert len(table) == len(STAGES) * 2 * DEPTH
    for (depth, stage), outcome in table.items():
        assert "ledger == chain" in outcome or "mismatch" in outcome, (depth, stage, outcome)


async def _mined(w3, tx_hash: str) -> bool:
    try:
        await w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        return False
    return True
