"""Refusals at the door: bad input is a 422 naming the field, a guard names itself and its figures, a key
without the requester role is refused; nothing is recorded, reserved, started or signed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.api.helpers import auth
from tests.swaps import helpers as h


async def _counts(db_engine, temporal_env, anvil_rpc) -> tuple:
    async with db_engine.connect() as conn:
        rows = await conn.scalar(sa.text("SELECT count(*) FROM payments WHERE kind = 'swap'"))
        reserved = await conn.scalar(sa.text("SELECT count(*) FROM reservations"))
    started = (await temporal_env.client.count_workflows("WorkflowType = 'SwapWorkflow'")).count
    return rows, reserved, started, await h.w3(anvil_rpc).eth.block_number


@pytest.mark.parametrize(
    "change,field,words",
    [
        ({"from_asset": "DOGE"}, "from_asset", "unknown asset 'DOGE'"),
        ({"to_asset": "XYZ"}, "to_asset", "unknown asset 'XYZ'"),
        ({"to_asset": "usdc"}, "to_asset", "same asset"),
        ({"amount": "0"}, "amount", "greater than zero"),
        ({"amount": "1.0000001"}, "amount", "more than 6 decimal places"),
        ({"amount": 10}, "amount", "decimal string"),
        ({"slippage_bps": 101}, "slippage_bps", "exceeds the policy's maximum of 100"),
        ({"slippage_bps": -1}, "slippage_bps", "greater than or equal to 0"),
        ({"to_asset": "GBPT"}, "to_asset", "no pool for USDC/GBPT"),
        ({"amount": "20000"}, "amount", "price_impact: price impact 2."),
        ({"wallet_id": "not-a-uuid"}, "wallet_id", "must be a UUID"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    http, dev, db_engine, temporal_env, anvil_rpc, change, field, words
):
    before = await _counts(db_engine, temporal_env, anvil_rpc)
    r = await h.swap(http, dev, {**h.body(dev), **change})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field and words in error["message"], error
    # the quote route answers the same refusal
    if not isinstance(change.get("amount"), int):
        params = {k: str(v) for k, v in {**h.body(dev), **change}.items()}
        q = await http.get("/v1/swaps/quote", params=params, headers=auth(dev))
        assert q.status_code == 422 and q.json()["error"]["field"] == field, q.text
    assert await _counts(db_engine, temporal_env, anvil_rpc) == before


async def test_an_approver_only_key_is_refused(http, dev, db_engine, temporal_env, anvil_rpc):
    before = await _counts(db_engine, temporal_env, anvil_rpc)
    r = await h.swap(http, dev, h.body(dev), user="bob")
    assert r.status_code == 403 and "requester" in r.json()["error"]["message"], r.text
    q = await http.get("/v1/swaps/quote", params=h.body(dev), headers=auth(dev, "bob"))
    assert q.status_code == 403, q.text
    assert await _counts(db_engine, temporal_env, anvil_rpc) == before


async def test_a_reused_key_with_another_request_is_a_conflict(http, dev):
    first = await h.swap(http, dev, h.body(dev, "1"), key="swap-conflict")
    assert first.status_code == 202, first.text
    again = await h.swap(http, dev, h.body(dev, "1"), key="swap-conflict")
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    other = await h.swap(http, dev, h.body(dev, "2"), key="swap-conflict")
    assert other.status_code == 409 and other.json()["error"]["field"] == "Idempotency-Key"
    await h.wait_swap(http, dev, first.json()["id"])
