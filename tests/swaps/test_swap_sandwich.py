"""Someone trades in the pool between the quote and the execution (a sandwich's front leg), and a deadline that
passes while approvers decide (a short one, waited out in real time). The swap waits for 2 of bob, carol, dave (above 100 USDC), which is when the test
moves the pool: inside the slippage bound the swap books the real (lower) output; beyond it the re-quote refuses
with nothing signed; a front-run that lands between signing and mining makes the router revert
(INSUFFICIENT_OUTPUT_AMOUNT), and the allowance goes back to 0. Every way: reservation released, no tokens lost,
audit rows for each step."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from eth_account.signers.local import LocalAccount

from paygent.chain import uniswap
from paygent.chain.anvil import dev_account
from paygent.chain.token import mint
from paygent.db.schema import swap_transactions
from tests.api.helpers import serve_api
from tests.approvals.helpers import approval, decide, tiers, until, wallet_with_policy
from tests.swaps import helpers as h


async def _awaiting_approval(
    http, dev, wallet_id: str, amount: str = "150", slippage_bps: int = 50
) -> tuple[str, dict]:
    r = await h.swap(http, dev, {**h.body(dev, amount, slippage_bps=slippage_bps), "wallet_id": wallet_id})
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    await h.wait_swap(http, dev, sid, until=("awaiting_approval",), timeout=30)
    shown = await until(lambda: approval(http, dev, sid, "bob"), lambda a: a is not None)
    return sid, shown


async def _approve(http, dev, sid: str, op_hash: str) -> None:
    for user in ("bob", "carol"):
        r = await decide(http, dev, user, sid, "approve", {"operation_hash": op_hash})
        assert r.status_code == 200, r.text


async def _trader(rpc: str, token: str, usdc: int) -> LocalAccount:
    trader = dev_account(7)
    await mint(h.w3(rpc), token, dev_account(0), trader.address, usdc)
    return trader


async def _reserved(db_engine, sid: str) -> list[str]:
    async with db_engine.connect() as conn:
        return list(
            (await conn.execute(sa.text("SELECT status FROM reservations WHERE payment_id = :p"), {"p": sid})).scalars()
        )


async def test_inside_the_bound_the_swap_books_the_real_output(
    http, dev, app_settings, swap_dev, anvil_rpc, token_address, eurc_address, db_engine
):
    wallet = await wallet_with_policy(http, dev, app_settings, tiers(), usdc=1_000)
    sid, shown = await _awaiting_approval(http, dev, wallet["id"])
    # approvers see the quote, the minimum and the price impact in the operation they approve
    terms = shown["operation"]["swap"]
    assert terms["min_amount_out"] > 0 and terms["quoted_amount_out"] > terms["min_amount_out"]
    assert terms["router"] == swap_dev["router"] and terms["asset_out"] == "EURC" and terms["price_impact_bps"] >= 30
    quoted = int(terms["quoted_amount_out"])
    trader = await _trader(anvil_rpc, token_address, 1_000 * 10**6)
    await uniswap.swap_directly(h.w3(anvil_rpc), trader, swap_dev["router"], token_address, eurc_address, 1_000 * 10**6)
    await _approve(http, dev, sid, shown["operation_hash"])
    view = await h.wait_swap(http, dev, sid)
    assert view["status"] == "confirmed", view
    out = int(view["amount_out_atomic"])
    assert int(terms["min_amount_out"]) <= out < quoted  # the real output, below the quote the front-run moved
    _, eurc = await h.balances(anvil_rpc, token_address, eurc_address, wallet["address"])
    assert eurc == out == await h.ledger_sum(db_engine, wallet["id"], "EURC")
    assert await _reserved(db_engine, sid) == ["committed"]


async def test_beyond_the_bound_the_requote_refuses_with_nothing_signed(
    http, dev, app_settings, swap_dev, anvil_rpc, token_address, eurc_address, db_engine
):
    wallet = await wallet_with_policy(http, dev, app_settings, tiers(), usdc=1_000)
    sid, shown = await _awaiting_approval(http, dev, wallet["id"])
    trader = await _trader(anvil_rpc, token_address, 20_000 * 10**6)
    await uniswap.swap_directly(
        h.w3(anvil_rpc), trader, swap_dev["router"], token_address, eurc_address, 20_000 * 10**6
    )
    block = await h.w3(anvil_rpc).eth.block_number
    await _approve(http, dev, sid, shown["operation_hash"])
    view = await h.wait_swap(http, dev, sid)
    assert view["status"] == "failed", view
    assert view["failure_reason"].startswith("SwapRefused: requote: the price moved: the pool now gives ")
    assert "below the minimum of" in view["failure_reason"]
    assert await h.balances(anvil_rpc, token_address, eurc_address, wallet["address"]) == (1_000 * 10**6, 0)
    assert await h.w3(anvil_rpc).eth.get_transaction_count(wallet["address"]) == 0  # nothing signed, nothing sent
    assert await h.w3(anvil_rpc).eth.block_number == block
    assert await _reserved(db_engine, sid) == ["released"]
    actions = await h.audit_actions(db_engine, sid)
    assert actions[:2] == ["payment.requested", "payment.reserved"] and actions[-1] == "payment.failed", actions


async def _front_run(rpc: str, trader: LocalAccount, router: str, token_in: str, token_out: str, amount: int) -> None:
    """Send a trade with a far higher tip while automine is off: mined ahead of the swap in the same block."""
    chain = h.w3(rpc)
    deadline = (await chain.eth.get_block("latest"))["timestamp"] + 600
    data = uniswap.swap_calldata(amount, 0, [token_in, token_out], trader.address, deadline)
    signed = trader.sign_transaction(
        {
            "type": 2,
            "chainId": await chain.eth.chain_id,
            "nonce": await chain.eth.get_transaction_count(trader.address, "pending"),
            "to": router,
            "value": 0,
            "data": data,
            "gas": 300_000,
            "maxFeePerGas": 500 * 10**9,
            "maxPriorityFeePerGas": 200 * 10**9,
        }
    )
    await chain.eth.send_raw_transaction(signed.raw_transaction)


async def test_a_front_run_after_signing_makes_the_router_revert_and_the_allowance_goes_back_to_zero(
    http, dev, app_settings, swap_dev, anvil_rpc, token_address, eurc_address, db_engine
):
    chain = h.w3(anvil_rpc)
    wallet = await h_wallet(http, dev, app_settings)
    trader = await _trader(anvil_rpc, token_address, 20_000 * 10**6)
    erc20 = uniswap.contract(chain, "erc20", token_address)
    await uniswap.send_call(chain, trader, token_address, erc20.functions.approve(swap_dev["router"], 20_000 * 10**6))
    try:
        await chain.provider.make_request("evm_setAutomine", [False])
        r = await h.swap(http, dev, {**h.body(dev, "50"), "wallet_id": wallet["id"]})
        assert r.status_code == 202, r.text
        sid = r.json()["id"]
        await h.wait_swap(http, dev, sid, until=("submitted",))
        await _front_run(anvil_rpc, trader, swap_dev["router"], token_address, eurc_address, 20_000 * 10**6)
        await chain.provider.make_request("evm_mine", [])
    finally:
        await chain.provider.make_request("evm_setAutomine", [True])
    view = await h.wait_swap(http, dev, sid)
    assert view["status"] == "failed", view
    assert view["failure_reason"] == "SwapReverted: UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT", view
    assert await h.allowance(anvil_rpc, token_address, wallet["address"], swap_dev["router"]) == 0
    assert await h.balances(anvil_rpc, token_address, eurc_address, wallet["address"]) == (100 * 10**6, 0)
    assert await _reserved(db_engine, sid) == ["released"]
    async with db_engine.connect() as conn:
        steps = (
            await conn.execute(sa.select(swap_transactions.c.step).where(swap_transactions.c.payment_id == sid))
        ).scalars()
        assert sorted(steps) == ["approve", "reset", "swap"]  # the reset once
    actions = await h.audit_actions(db_engine, sid)
    for step in (
        "payment.swap_approve_signed",
        "payment.swap_swap_signed",
        "payment.swap_reset_signed",
        "payment.failed",
    ):
        assert step in actions, actions


# A deadline of a few seconds and real waits, not evm_increaseTime: this chain is the session's, and a clock moved
# an hour ahead would expire every later x402 authorization (its validBefore is read from the wall clock).
SHORT_DEADLINE_SECONDS = 3


async def _mined_timestamp(chain) -> int:
    await chain.provider.make_request("evm_mine", [])
    return (await chain.eth.get_block("latest"))["timestamp"]


async def test_a_deadline_that_passes_while_approvers_decide_is_refreshed_at_signing(
    dev, app_settings, temporal_env, swap_dev, anvil_rpc, token_address, eurc_address, db_engine
):
    chain = h.w3(anvil_rpc)
    settings = app_settings.model_copy(update={"swap_deadline_seconds": SHORT_DEADLINE_SECONDS})
    async with serve_api(settings, temporal_env.client) as http:
        wallet = await wallet_with_policy(http, dev, app_settings, tiers(), usdc=1_000)
        sid, shown = await _awaiting_approval(http, dev, wallet["id"])
        quoted_at = await _mined_timestamp(chain)
        while await _mined_timestamp(chain) <= quoted_at + SHORT_DEADLINE_SECONDS:  # the quote's deadline passes
            await asyncio.sleep(0.5)
        approved_at = await _mined_timestamp(chain)
        await _approve(http, dev, sid, shown["operation_hash"])
        view = await h.wait_swap(http, dev, sid)
    assert view["status"] == "confirmed", view
    async with db_engine.connect() as conn:
        terms = await conn.scalar(
            sa.select(swap_transactions.c.terms).where(
                swap_transactions.c.payment_id == sid, swap_transactions.c.step == "swap"
            )
        )
    # set at signing, from the block then: after the approval, never the stale quote's
    assert approved_at < terms["deadline"] <= approved_at + SHORT_DEADLINE_SECONDS + 30


async def test_a_deadline_that_passes_before_mining_reverts_expired(
    dev, app_settings, temporal_env, swap_dev, anvil_rpc, token_address, eurc_address, db_engine
):
    chain = h.w3(anvil_rpc)
    settings = app_settings.model_copy(update={"swap_deadline_seconds": SHORT_DEADLINE_SECONDS})
    async with serve_api(settings, temporal_env.client) as http:
        wallet = await h_wallet(http, dev, app_settings)
        try:
            await chain.provider.make_request("evm_setAutomine", [False])
            r = await h.swap(http, dev, {**h.body(dev, "5"), "wallet_id": wallet["id"]})
            sid = r.json()["id"]
            await h.wait_swap(http, dev, sid, until=("submitted",))
            await asyncio.sleep(SHORT_DEADLINE_SECONDS + 1.5)  # the next block's timestamp is past the deadline
            await chain.provider.make_request("evm_mine", [])
        finally:
            await chain.provider.make_request("evm_setAutomine", [True])
        view = await h.wait_swap(http, dev, sid)
    assert view["failure_reason"] == "SwapReverted: UniswapV2Router: EXPIRED", view
    assert await h.allowance(anvil_rpc, token_address, wallet["address"], swap_dev["router"]) == 0
    assert await h.balances(anvil_rpc, token_address, eurc_address, wallet["address"]) == (100 * 10**6, 0)
    assert await _reserved(db_engine, sid) == ["released"]


async def h_wallet(http, dev, settings) -> dict:
    from tests.api.helpers import funded_wallet

    return await funded_wallet(http, dev, settings, 100)


async def test_a_swap_waiting_for_approval_can_be_cancelled_like_a_payment(http, dev, app_settings, db_engine):
    wallet = await wallet_with_policy(http, dev, app_settings, tiers(), usdc=1_000)
    sid, _ = await _awaiting_approval(http, dev, wallet["id"])
    r = await http.post(f"/v1/payments/{sid}/cancel", json={"reason": "changed my mind"}, headers=h.auth(dev))
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    view = await h.wait_swap(http, dev, sid)
    assert view["status"] == "cancelled" and "changed my mind" in view["failure_reason"], view
    assert await _reserved(db_engine, sid) == ["released"]
