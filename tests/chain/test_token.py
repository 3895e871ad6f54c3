"""Paygent USD as a plain ERC-20 on a real anvil chain: compile, deploy, mint, transfer, allowances."""

from __future__ import annotations

import time

import pytest
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from web3.logs import DISCARD

from paygent.chain.contracts import compile_contract
from paygent.chain.token import (
    EURC_NAME,
    EURC_SYMBOL,
    TOKEN_DECIMALS,
    TOKEN_NAME,
    TOKEN_SYMBOL,
    TOKEN_VERSION,
    TransactionReverted,
    balance_of,
    deploy_token,
    is_deployed,
    mint,
    send_transaction,
    token_abi,
    transfer,
    transfer_calldata,
)
from tests.chain.eip3009 import DOMAIN_FIELDS, call_data, domain


def test_compile_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("PAYGENT_HOME", str(tmp_path))
    first = compile_contract("PaygentUSD")
    builds = list((tmp_path / "build").glob("PaygentUSD-*.json"))
    assert len(builds) == 1
    started = time.perf_counter()
    again = compile_contract("PaygentUSD")
    assert time.perf_counter() - started < 0.2  # a file read, no compiler run
    assert again == first
    assert first.bytecode.startswith("0x") and len(first.bytecode) > 1000
    assert {e.get("name") for e in first.abi} >= {"transferWithAuthorization", "authorizationState", "mint"}
    with pytest.raises(FileNotFoundError):
        compile_contract("NoSuchContract")


async def test_deploy_sets_metadata_and_domain(w3, owner, token, contract, new_account):
    assert await is_deployed(w3, token)
    assert not await is_deployed(w3, (await new_account()).address)
    fns = contract.functions
    assert await fns.name().call() == TOKEN_NAME
    assert await fns.symbol().call() == TOKEN_SYMBOL
    assert await fns.version().call() == TOKEN_VERSION
    assert await fns.decimals().call() == TOKEN_DECIMALS
    assert await fns.owner().call() == owner.address
    # DOMAIN_SEPARATOR equals the EIP-712 domain hash eth-account computes for (name, "2", 31337, token).
    signable = encode_typed_data(
        full_message={
            "types": {"EIP712Domain": DOMAIN_FIELDS, "Empty": []},
            "primaryType": "Empty",
            "domain": domain(token),
            "message": {},
        }
    )
    assert await fns.DOMAIN_SEPARATOR().call() == signable.header
    fields, name, version, chain_id, verifying, salt, extensions = await fns.eip712Domain().call()
    assert (fields, name, version, chain_id, verifying) == (b"\x0f", TOKEN_NAME, "2", 31337, token)
    assert salt == b"\0" * 32 and extensions == []


async def test_a_second_deploy_is_a_separate_token(w3, owner, token, contract):
    other = await deploy_token(w3, owner, EURC_NAME, EURC_SYMBOL)
    assert await is_deployed(w3, other)
    assert await balance_of(w3, other, owner.address) == 0
    fns = w3.eth.contract(address=other, abi=token_abi()).functions
    assert (await fns.name().call(), await fns.symbol().call()) == ("Paygent EUR", "EURC")
    assert (await fns.decimals().call(), await fns.version().call()) == (TOKEN_DECIMALS, TOKEN_VERSION)
    # its own EIP-712 domain: an authorization signed for one token is worthless on the other
    assert await fns.DOMAIN_SEPARATOR().call() != await contract.functions.DOMAIN_SEPARATOR().call()
    fields, name, *_ = await fns.eip712Domain().call()
    assert name == "Paygent EUR"
    # the USDC deployment is unchanged by the constructor arguments (the x402 domain uses name())
    assert (await contract.functions.name().call(), await contract.functions.symbol().call()) == (
        "Paygent USD",
        "USDC",
    )


async def test_name_and_symbol_must_fit(w3, owner):
    with pytest.raises(ValueError, match="symbol"):
        await deploy_token(w3, owner, "Paygent EUR", "")
    with pytest.raises(ValueError, match="symbol"):
        await deploy_token(w3, owner, "x" * 33, "EURC")


async def test_mint_credits_exactly_and_only_the_owner_can_mint(w3, owner, token, contract, new_account):
    holder = await new_account(gas=True)
    supply_before = await contract.functions.totalSupply().call()
    tx_hash = await mint(w3, token, owner, holder.address, 1_234_567)
    assert tx_hash.startswith("0x") and len(tx_hash) == 66
    assert await balance_of(w3, token, holder.address) == 1_234_567
    assert await contract.functions.totalSupply().call() == supply_before + 1_234_567
    with pytest.raises(TransactionReverted, match="PaygentUSD: caller is not the owner"):
        await mint(w3, token, holder, holder.address, 1)
    with pytest.raises(ValueError):
        await mint(w3, token, owner, holder.address, 1.5)
    assert await balance_of(w3, token, holder.address) == 1_234_567


async def test_transfer_moves_balances_exactly(w3, token, contract, new_account):
    payer = await new_account(tokens=1_000_000, gas=True)
    payee = await new_account()
    await send_transaction(w3, payer, token, transfer_calldata(payee.address, 250_001))
    assert await balance_of(w3, token, payer.address) == 749_999
    assert await balance_of(w3, token, payee.address) == 250_001
    receipt_hash = await transfer(w3, token, payer, payee.address, 749_999)
    receipt = await w3.eth.get_transaction_receipt(receipt_hash)
    (event,) = contract.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert (event.args.sender, event.args.receiver, event.args.value) == (payer.address, payee.address, 749_999)
    assert await balance_of(w3, token, payer.address) == 0
    assert await balance_of(w3, token, payee.address) == 1_000_000


async def test_transfer_over_balance_reverts_with_the_erc20_message(w3, token, new_account):
    payer = await new_account(tokens=100, gas=True)
    payee = await new_account()
    with pytest.raises(TransactionReverted, match="ERC20: transfer amount exceeds balance"):
        await transfer(w3, token, payer, payee.address, 101)
    assert await balance_of(w3, token, payer.address) == 100
    assert await balance_of(w3, token, payee.address) == 0


async def test_approve_and_transfer_from(w3, token, contract, new_account):
    holder = await new_account(tokens=500, gas=True)
    spender = await new_account(gas=True)
    await send_transaction(w3, holder, token, call_data(contract, "approve", [spender.address, 300]))
    assert await contract.functions.allowance(holder.address, spender.address).call() == 300
    with pytest.raises(TransactionReverted, match="ERC20: transfer amount exceeds allowance"):
        await send_transaction(
            w3, spender, token, call_data(contract, "transferFrom", [holder.address, spender.address, 301])
        )
    await send_transaction(
        w3, spender, token, call_data(contract, "transferFrom", [holder.address, spender.address, 120])
    )
    assert await contract.functions.allowance(holder.address, spender.address).call() == 180
    assert await balance_of(w3, token, holder.address) == 380
    assert await balance_of(w3, token, spender.address) == 120


def test_transfer_calldata_is_the_erc20_encoding():
    to = "0x000000000000000000000000000000000000dEaD"
    data = transfer_calldata(to, 10**6)
    assert data[:4] == keccak(text="transfer(address,uint256)")[:4] == bytes.fromhex("a9059cbb")
    assert data[4:36] == bytes(12) + bytes.fromhex(to[2:])
    assert int.from_bytes(data[36:68], "big") == 10**6 and len(data) == 68
    for bad in (-1, 1.0, True):
        with pytest.raises(ValueError):
            transfer_calldata(to, bad)
