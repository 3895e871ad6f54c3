"""A lost nonce never wedges a wallet. Two ways to lose one: a reorg deeper than the depth drops a settled
payment's transaction (its payment is `confirmed`, so no receipt wait re-sends it), or a nonce is allocated and
never used. Either way the next payment from the wallet waits behind the gap; the follower re-sends the stored
bytes of the payment that held the nonce, or fills it with a no-op, and the new payment confirms within 60 s."""

from __future__ import annotations

import time

import sqlalchemy as sa

from paygent.db.schema import address_nonces
from tests.api.helpers import create, funded_wallet, new_recipient, transfers_to, wait_final
from tests.follower.reorg_helpers import mine, reorg_stack, row, settle, until
from tests.reconcile.helpers import asset, audit_actions, reconciliation

WITHIN = 60.0


async def test_a_rolled_back_settled_payment_does_not_wedge_the_next_one(
    http, dev, db_engine, temporal_env, app_settings
):
    """The case seen: a settled 0.5 USDC transfer rolled back 3 blocks (automine, depth 1), then a new payment."""
    wallet = await funded_wallet(http, dev, app_settings, 10)
    first_to, next_to = new_recipient(), new_recipient()
    async with reorg_stack(app_settings, temporal_env, 1, automine=True) as (settings, api, w3):
        body = {"wallet_id": wallet["id"], "to": first_to, "amount": "0.5", "asset": "USDC", "memo": "settled"}
        first = (await create(api, dev, body)).json()["id"]
        assert (await wait_final(api, dev, first))["status"] == "confirmed"
        booked = (await row(db_engine, first))["block_number"]
        await mine(w3, 2)
        await settle(http, dev, temporal_env, settings.task_queue, wallet["id"], booked)
        await w3.provider.make_request("anvil_rollback", [3])  # its block is gone; nothing holds its nonce
        assert int(await w3.eth.block_number) == booked - 1
        started = time.monotonic()
        body = {**body, "to": next_to, "memo": "next"}
        second = (await create(api, dev, body)).json()["id"]
        final = await wait_final(api, dev, second, timeout=WITHIN)
        took = time.monotonic() - started

        async def reincluded() -> bool:
            return "payment.reincluded" in await audit_actions(db_engine, "payment", first)

        await until(reincluded, 20, "the new block of the first payment recorded")
        again = await row(db_engine, first)
    print(f"\nlost nonce (reorg of a settled payment): the next payment confirmed {took:.1f}s after it was sent")
    assert final["status"] == "confirmed" and took < WITHIN
    assert again["status"] == "confirmed" and again["tx_hash"] is not None  # the same bytes landed again
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, first_to) == 1
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, next_to) == 1
    actions = await audit_actions(db_engine, "payment", first)
    assert "payment.reorged" in actions and "payment.reincluded" in actions, actions


async def test_a_nonce_allocated_and_never_sent_is_filled_with_a_no_op(
    http, dev, db_engine, temporal_env, app_settings
):
    """A nonce allocated and lost (nothing stored for it): the next payment waits behind it until the follower
    fills it with a no-op (audited `wallet.nonce_filled`), then confirms."""
    wallet = await funded_wallet(http, dev, app_settings, 10)
    to = new_recipient()
    async with reorg_stack(app_settings, temporal_env, 1, automine=True) as (settings, api, w3):
        body = {"wallet_id": wallet["id"], "to": to, "amount": "0.5", "asset": "USDC", "memo": "first"}
        assert (await wait_final(api, dev, (await create(api, dev, body)).json()["id"]))["status"] == "confirmed"
        async with db_engine.begin() as conn:  # a nonce handed out and never used: lost
            await conn.execute(
                address_nonces.update()
                .where(sa.func.lower(address_nonces.c.address) == wallet["address"].lower())
                .values(next_nonce=address_nonces.c.next_nonce + 1)
            )
        started = time.monotonic()
        pid = (await create(api, dev, {**body, "memo": "after the gap"})).json()["id"]
        final = await wait_final(api, dev, pid, timeout=WITHIN)
        took = time.monotonic() - started
        # the no-op's gas is the wallet's own spending: the native balance reconciles with no mismatch
        await settle(http, dev, temporal_env, settings.task_queue, wallet["id"], int(await w3.eth.block_number))
        view = await reconciliation(http, dev, wallet["id"])
    print(f"\nlost nonce (allocated, never sent): filled with a no-op; the payment confirmed after {took:.1f}s")
    assert final["status"] == "confirmed" and took < WITHIN
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 2
    assert "wallet.nonce_filled" in await audit_actions(db_engine, "wallet", wallet["id"])
    eth = asset(view, "ETH")
    assert eth["difference_atomic"] == "0" and [m for m in view["mismatches"] if m["asset"] == "ETH"] == [], view
