"""`stack up` keeps the chain's pieces: the recorded token is replaced only when the chain proves it gone or
something else, never because a call was slow or failed, and never while payments are in flight. Runs the real
rule (paygent/stack/provision.py `ensure_token`) against the session's anvil (directly or through a proxy that
answers `eth_call` late or with errors) and database."""

from __future__ import annotations

import pytest

from paygent.chain.anvil import dev_account
from paygent.chain.rpc import async_web3
from paygent.chain.token import send_transaction
from paygent.stack import chain_pieces
from paygent.stack.processes import StackError
from paygent.stack.provision import ensure_token, ensure_tokens, payments_in_flight, token_piece
from tests.api.helpers import auth, create, new_recipient, payment_body
from tests.api.rpc_proxy import RpcProxy
from tests.api.test_worker_crash import _wait_row

# a contract with code and no functions: its runtime is one STOP (no symbol(), no decimals())
NOT_A_TOKEN = bytes.fromhex("6001600c60003960016000f300")


def _recorded(address: str) -> dict:
    return {"token": {"address": address, "symbol": "USDC", "decimals": 6}}


async def _deployments(w3) -> int:
    """Transactions sent by dev account 0, which deploys the stack's contracts."""
    return await w3.eth.get_transaction_count(dev_account(0).address)


@pytest.fixture
def quick_timeouts(monkeypatch):
    """Seconds, not minutes, before a slow node is given up on (the rule is the same)."""
    monkeypatch.setattr(chain_pieces, "CALL_TIMEOUT_SECONDS", 0.3)


async def test_the_recorded_token_is_kept(anvil_rpc, token_address, database_url):
    w3 = async_web3(anvil_rpc)
    sent = await _deployments(w3)
    token, done = await ensure_token(w3, _recorded(token_address), database_url)
    assert (token["address"], done) == (token_address, "reused")
    assert await _deployments(w3) == sent


async def test_a_slow_chain_stops_up_and_deploys_nothing(anvil_rpc, token_address, database_url, quick_timeouts):
    async with RpcProxy(anvil_rpc) as proxy:
        w3 = async_web3(proxy.url)
        sent = await _deployments(w3)
        proxy.slow_calls(2.0)
        with pytest.raises(StackError) as stopped:
            await ensure_token(w3, _recorded(token_address), database_url)
        assert "did not answer symbol()" in str(stopped.value) and "no answer within 0.3s" in str(stopped.value)
        assert "nothing was redeployed" in str(stopped.value)
        proxy.slow_calls(0)
        proxy.fail_calls()
        with pytest.raises(StackError) as failed:
            await ensure_token(w3, _recorded(token_address), database_url)
        assert "node overloaded" in str(failed.value)
        proxy.fail_calls(False)
        assert await _deployments(w3) == sent
        # the node recovers: the same token, still there
        assert (await ensure_token(w3, _recorded(token_address), database_url))[0]["address"] == token_address


async def test_another_contract_is_replaced_only_when_no_payment_is_in_flight(
    anvil_rpc, database_url, http, dev, db_engine
):
    w3 = async_web3(anvil_rpc)
    receipt = await w3.eth.get_transaction_receipt(await send_transaction(w3, dev_account(1), None, NOT_A_TOKEN))
    other = receipt["contractAddress"]
    found = await chain_pieces.identify(w3, token_piece(), other)
    assert found == chain_pieces.Found.other

    pid = (await create(http, dev, payment_body(dev, new_recipient(), "500"))).json()["id"]  # awaits approval
    await _wait_row(db_engine, pid, lambda p: p["status"] == "awaiting_approval")
    assert await payments_in_flight(database_url) >= 1
    sent = await _deployments(w3)
    with pytest.raises(StackError) as refused:
        await ensure_token(w3, _recorded(other), database_url)
    assert "payment(s) are in flight" in str(refused.value) and "not redeploying" in str(refused.value)
    assert await _deployments(w3) == sent
    assert (await http.post(f"/v1/payments/{pid}/cancel", headers=auth(dev))).status_code == 200

    # with nothing in flight (a fresh database), the rule deploys a new token in its place
    async def none_in_flight() -> int:
        return 0

    address, done = await chain_pieces.ensure_contract(w3, token_piece(), other, in_flight=none_in_flight)
    assert done == "deployed" and address != other
    assert await chain_pieces.identify(w3, token_piece(), address) == chain_pieces.Found.ours


async def test_no_code_at_the_recorded_address_counts_as_a_fresh_chain(anvil_rpc, database_url):
    w3 = async_web3(anvil_rpc)
    empty = new_recipient()
    assert await chain_pieces.identify(w3, token_piece(), empty) == chain_pieces.Found.no_code


async def test_eurc_is_kept_under_its_own_symbol_and_usdc_is_not_eurc(
    anvil_rpc, token_address, eurc_address, database_url
):
    w3 = async_web3(anvil_rpc)
    sent = await _deployments(w3)
    recorded = {
        "token": {"address": token_address, "symbol": "USDC", "decimals": 6},
        "tokens": {"EURC": {"address": eurc_address, "symbol": "EURC", "decimals": 6}},
    }
    tokens = await ensure_tokens(w3, recorded, database_url)  # dev.json's `token` still names USDC
    assert {s: t["address"] for s, t in tokens.items()} == {"USDC": token_address, "EURC": eurc_address}
    assert await _deployments(w3) == sent
    # a contract with another symbol at the recorded address is not ours, in either direction
    assert await chain_pieces.identify(w3, token_piece("EURC"), token_address) == chain_pieces.Found.other
    assert await chain_pieces.identify(w3, token_piece("USDC"), eurc_address) == chain_pieces.Found.other
