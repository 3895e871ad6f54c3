"""Bad input gets a 4xx naming the field, and nothing is recorded, started or signed."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from paygent.db.schema import payments
from tests.api.helpers import auth, create, new_recipient, payment_body


async def _counts(db_engine, temporal_env):
    async with db_engine.connect() as conn:
        rows = await conn.scalar(sa.select(sa.func.count()).select_from(payments))
    workflows = (await temporal_env.client.count_workflows("WorkflowType = 'PaymentWorkflow'")).count
    return rows, workflows


@pytest.fixture
async def nothing_started(db_engine, temporal_env, worker):
    before = await _counts(db_engine, temporal_env)
    yield
    assert await _counts(db_engine, temporal_env) == before


@pytest.mark.parametrize(
    "headers,reason",
    [
        ({}, "required"),
        ({"Authorization": "Bearer pgk_not-a-real-key"}, "not valid"),
        ({"Authorization": "Basic abc"}, "required"),
    ],
)
async def test_missing_or_wrong_api_key_is_401(http, dev, headers, reason, nothing_started):
    r = await http.post(
        "/v1/payments",
        json=payment_body(dev, new_recipient()),
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 401
    assert r.json()["error"]["field"] == "Authorization" and reason in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "amount,reason",
    [
        ("-5", "positive"),
        ("0", "greater than zero"),
        ("0.0000001", "more than 6 decimal places"),
        ("ten", "not a decimal"),
        ("1e3", "not a decimal"),
        (5, 'as a decimal string, "5", not as the number 5'),
        (1.5, 'as a decimal string, "1.5", not as the number 1.5'),
        ("\uff11", "not a decimal"),  # fullwidth 1
        ("\u0661", "not a decimal"),  # Arabic-Indic 1
    ],
)
async def test_bad_amount_is_422_naming_amount(http, dev, amount, reason, nothing_started):
    r = await create(http, dev, payment_body(dev, new_recipient(), amount=amount))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "amount"
    assert reason in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "to",
    [
        "0x123",
        "not-an-address",
        "0x" + "g" * 40,
        "0x52908400098527886E0F7030069857D2E4169EE7".replace("E", "e", 1),
        "0x" + "0" * 40,
    ],
)
async def test_bad_recipient_is_422_naming_to(http, dev, to, nothing_started):
    r = await create(http, dev, payment_body(dev, to))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "to"


async def test_unknown_asset_is_422(http, dev, nothing_started):
    r = await create(http, dev, payment_body(dev, new_recipient(), asset="DAI"))
    assert r.status_code == 422 and r.json()["error"]["field"] == "asset"
    assert "unknown asset" in r.json()["error"]["message"]


@pytest.mark.parametrize("wallet_id,reason", [("nope", "UUID"), (str(uuid.uuid4()), "no such wallet")])
async def test_unknown_wallet_is_422(http, dev, wallet_id, reason, nothing_started):
    r = await create(http, dev, {**payment_body(dev, new_recipient()), "wallet_id": wallet_id})
    assert r.status_code == 422 and r.json()["error"]["field"] == "wallet_id"
    assert reason in r.json()["error"]["message"]


async def test_another_tenants_wallet_is_refused(http, dev, db_engine, app_settings, nothing_started):
    from paygent.db.accounts import create_user, create_wallet, ensure_tenant

    async with db_engine.begin() as conn:
        tenant = await ensure_tenant(conn, f"rival-{uuid.uuid4().hex[:6]}")
        await create_user(conn, tenant, "eve", ["requester"])
        wallet_id, _ = await create_wallet(conn, tenant, "rival-wallet", app_settings.master_key_bytes())
    r = await create(http, dev, {**payment_body(dev, new_recipient()), "wallet_id": str(wallet_id)})
    assert r.status_code == 422 and r.json()["error"]["field"] == "wallet_id"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"to": "0x52908400098527886E0F7030069857D2E4169EE7", "amount": "1", "asset": "USDC"}, "wallet_id"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_missing_or_unknown_fields_are_named(http, dev, body, field, nothing_started):
    full = {**payment_body(dev, new_recipient()), **body}
    if field == "wallet_id":
        full.pop("wallet_id")
    r = await create(http, dev, full)
    assert r.status_code == 422 and r.json()["error"]["field"] == field


async def test_missing_idempotency_key_is_400(http, dev, nothing_started):
    r = await http.post("/v1/payments", json=payment_body(dev, new_recipient()), headers=auth(dev))
    assert r.status_code == 400 and r.json()["error"]["field"] == "Idempotency-Key"


async def test_body_too_large_is_413(http, dev, nothing_started):
    body = payment_body(dev, new_recipient(), memo="x" * 50_000)
    r = await create(http, dev, body)
    assert r.status_code == 413 and r.json()["error"]["field"] == "body"


async def test_malformed_json_is_422(http, dev, nothing_started):
    r = await http.post(
        "/v1/payments",
        content=b"{not json",
        headers={**auth(dev), "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"},
    )
    assert r.status_code == 422
