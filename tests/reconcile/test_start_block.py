"""On a chain with history before Paygent, the first scan starts at PAYGENT_RECONCILE_START_BLOCK: what a wallet
held before it is one opening deposit, and the ledger equals the chain from there."""

from __future__ import annotations

import uuid

from paygent.chain.rpc import async_web3
from paygent.db.engine import get_engine
from tests.api.helpers import funded_wallet
from tests.reconcile.conftest import reconcile_once
from tests.reconcile.helpers import asset, reconciliation
from workers.main import build_worker


async def test_first_scan_starts_at_the_start_block(app_settings, temporal_env, dev, http):
    wallet = await funded_wallet(http, dev, app_settings, 30)  # funded before the start block
    w3 = async_web3(app_settings.rpc_url)
    await w3.provider.make_request("anvil_mine", ["0x3"])
    start = await w3.eth.block_number
    settings = app_settings.model_copy(
        update={"task_queue": f"start-{uuid.uuid4().hex[:6]}", "reconcile_start_block": start}
    )
    async with build_worker(temporal_env.client, settings, get_engine(settings.database_url)):
        result = await reconcile_once(temporal_env.client, settings.task_queue)
    view = await reconciliation(http, dev, wallet["id"])
    usdc, eth = asset(view, "USDC"), asset(view, "ETH")
    assert usdc["checkpoint_block"] >= start - 1
    assert usdc["ledger_balance_atomic"] == usdc["chain_balance_atomic"] == str(30 * 10**6)
    assert eth["ledger_balance_atomic"] == eth["chain_balance_atomic"] == str(10**18)
    # this wallet's view only: the tick also judges the wallets other tests left in the session's database
    assert view["mismatches"] == [] and result.wallets >= 1
