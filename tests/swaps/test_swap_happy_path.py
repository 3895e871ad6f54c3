"""A swap on the real Uniswap V2 router and pool, through the API and the worker: quote, reserve, approve exactly,
swap, settle both legs from the receipt's logs, the allowance 0 afterwards."""

from __future__ import annotations

from paygent.chain import uniswap
from tests.api.helpers import auth
from tests.swaps import helpers as h


async def test_the_router_is_v2_cores_pair_hash():
    uniswap.check_init_code_hash()
    assert uniswap.pair_init_code_hash() == uniswap.ROUTER_INIT_CODE_HASH


async def test_quote_reads_the_pool_and_reserves_nothing(http, dev, swap_dev, anvil_rpc, token_address, eurc_address):
    pool = await uniswap.quote(
        h.w3(anvil_rpc), swap_dev["router"], swap_dev["factory"], token_address, eurc_address, 10**7
    )
    params = {"wallet_id": dev["wallets"]["treasury"]["id"], "from_asset": "USDC", "to_asset": "EURC", "amount": "10"}
    r = await http.get("/v1/swaps/quote", params=params, headers=auth(dev))
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["amount_out_atomic"] == str(pool.amount_out)
    assert int(q["min_amount_out_atomic"]) == pool.amount_out * 9950 // 10000  # the default 50 bps
    assert q["route"] == ["USDC", "EURC"] and q["slippage_bps"] == 50
    assert 30 <= q["price_impact_bps"] <= 40
    assert q["text"].startswith("Swap 10 USDC -> >= ") and "via Uniswap V2" in q["text"]


async def test_a_swap_settles_both_legs_from_the_receipt(
    http, dev, swap_dev, anvil_rpc, token_address, eurc_address, db_engine, temporal_env
):
    wallet = dev["wallets"]["treasury"]
    before = await h.balances(anvil_rpc, token_address, eurc_address, wallet["address"])
    ledger_before = (
        await h.ledger_sum(db_engine, wallet["id"], "USDC"),
        await h.ledger_sum(db_engine, wallet["id"], "EURC"),
    )
    r = await h.swap(http, dev, h.body(dev, "10", slippage_bps=30))
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["quote"]["slippage_bps"] == 30
    view = await h.wait_swap(http, dev, started["id"])
    assert view["status"] == "confirmed", view
    after = await h.balances(anvil_rpc, token_address, eurc_address, wallet["address"])
    out = int(view["amount_out_atomic"])
    assert after[0] == before[0] - 10_000_000
    assert after[1] == before[1] + out
    assert out >= int(view["min_amount_out_atomic"])
    # the ledger says what the chain says, per asset
    assert await h.ledger_sum(db_engine, wallet["id"], "USDC") - ledger_before[0] == -10_000_000
    assert await h.ledger_sum(db_engine, wallet["id"], "EURC") - ledger_before[1] == out
    assert await h.allowance(anvil_rpc, token_address, wallet["address"], swap_dev["router"]) == 0
    actions = await h.audit_actions(db_engine, started["id"])
    assert (
        actions[0] == "payment.requested"
        and "payment.swap_approve_signed" in actions
        and "payment.swap_swap_signed" in actions
    )
    assert actions[-1] == "payment.confirmed"
    # the Temporal UI: the summary line and PaygentKind=swap
    described = await temporal_env.client.get_workflow_handle(view["workflow_id"]).describe()
    summary = await described.static_summary() or ""
    assert summary.startswith("Swap 10 USDC -> >= ") and summary.endswith("EURC via Uniswap V2 (0.31% impact)"), summary
    kinds = await temporal_env.client.count_workflows(f"WorkflowId = '{view['workflow_id']}' AND PaygentKind = 'swap'")
    assert kinds.count == 1
    # a swap is a payment of kind swap in the list
    listed = await http.get("/v1/payments", headers=auth(dev))
    item = next(i for i in listed.json()["items"] if i["id"] == started["id"])
    assert item["kind"] == "swap" and item["swap"]["amount_out"] == str(out)
    print(
        f"\nswap: quote {view['quoted_amount_out']} EURC, minimum {view['min_amount_out']}, "
        f"real output {view['amount_out']}, gas {view['gas_used']} (approve + swap), tx {view['tx_hash']}, "
        f"history {view['temporal_ui_url']}"
    )
