"""Secrets at rest: webhook signing secrets are sealed under the master key (and a migration seals the rows written
before); the paid service keeps its payment-identifier records in Redis, so a restart cannot settle a replay."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid

import sqlalchemy as sa
import uvicorn
from eth_account import Account
from sqlalchemy.ext.asyncio import create_async_engine

from paygent.chain.anvil import dev_account
from paygent.crypto import decode_master_key, new_master_key, unseal_webhook_secret
from paygent.db.engine import async_url
from paygent.db.migrate import upgrade
from paygent.db.schema import webhooks
from paygent.egress import EgressPolicy
from paygent.netutil import free_port
from paygent.x402 import client as x402c
from paygent.x402.paid_service import create_paid_service
from tests.api.helpers import auth
from tests.conftest import ADMIN_DATABASE_URL, _admin_execute
from tests.x402.conftest import FACILITATOR_INDEX, PaidService
from tests.x402.test_client import transfers_to

PRICE = 10_000


async def test_webhook_secret_is_sealed_and_only_the_master_key_opens_it(http, dev, db_engine, app_settings):
    r = await http.post(
        "/v1/webhooks", headers=auth(dev), json={"url": "https://93.184.215.14/paygent"}
    )  # public: no DNS offline
    assert r.status_code == 201, r.text
    hook_id, secret = uuid.UUID(r.json()["id"]), r.json()["secret"]
    async with db_engine.connect() as conn:
        row = (await conn.execute(sa.select(webhooks).where(webhooks.c.id == hook_id))).mappings().one()
        as_text = await conn.scalar(
            sa.text("SELECT row_to_json(w)::text FROM webhooks w WHERE id = :id"), {"id": hook_id}
        )
    assert "secret" not in row and secret not in as_text and secret.encode() not in bytes(row["secret_sealed"])
    assert unseal_webhook_secret(app_settings.master_key_bytes(), hook_id, bytes(row["secret_sealed"])) == secret
    listed = (await http.get("/v1/webhooks", headers=auth(dev))).json()["items"]
    assert all("secret" not in w and "secret_sealed" not in w for w in listed)
    assert (await http.delete(f"/v1/webhooks/{hook_id}", headers=auth(dev))).status_code == 204


def test_migration_seals_existing_plaintext_secrets(monkeypatch):
    """A database at 0002 with a plaintext secret: upgrading seals it under the master key and drops the text."""
    name = f"paygent_seal_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    url = f"{async_url(ADMIN_DATABASE_URL).rsplit('/', 1)[0]}/{name}"
    key = new_master_key()
    monkeypatch.setenv("PAYGENT_MASTER_KEY", key)
    tenant, hook = uuid.uuid4(), uuid.uuid4()
    try:
        upgrade(url, "0002")

        async def insert_plaintext() -> None:
            engine = create_async_engine(url)
            async with engine.begin() as conn:
                await conn.execute(sa.text("INSERT INTO tenants (id, name) VALUES (:id, 'old')"), {"id": tenant})
                await conn.execute(
                    sa.text(
                        "INSERT INTO webhooks (id, tenant_id, url, secret) "
                        "VALUES (:id, :t, 'https://hooks.example.com/x', 'old-plain-secret')"
                    ),
                    {"id": hook, "t": tenant},
                )
            await engine.dispose()

        asyncio.run(insert_plaintext())
        upgrade(url)

        async def read() -> tuple[list[str], bytes]:
            engine = create_async_engine(url)
            async with engine.connect() as conn:
                columns = list((await conn.execute(sa.text("SELECT * FROM webhooks"))).keys())
                sealed = await conn.scalar(sa.text("SELECT secret_sealed FROM webhooks WHERE id = :id"), {"id": hook})
            await engine.dispose()
            return columns, bytes(sealed)

        columns, sealed = asyncio.run(read())
    finally:
        asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert "secret" not in columns and b"old-plain-secret" not in sealed
    assert unseal_webhook_secret(decode_master_key(key), hook, sealed) == "old-plain-secret"


@contextlib.asynccontextmanager
async def serve_paid(anvil_rpc: str, token_address: str, pay_to: str, redis_url: str, port: int):
    app = create_paid_service(
        anvil_rpc, token_address, pay_to, dev_account(FACILITATOR_INDEX).key.hex(), redis_url=redis_url
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield PaidService(url=f"http://127.0.0.1:{port}", pay_to=pay_to, egress=EgressPolicy(f"127.0.0.1:{port}"))
    finally:
        server.should_exit = True
        await task


async def test_restarted_paid_service_answers_a_replay_from_its_record(
    anvil_rpc, token_address, redis_url, new_payer, policy, w3
):
    pay_to, port = Account.from_key(os.urandom(32)).address, free_port()
    payer = await new_payer(PRICE * 10)
    async with serve_paid(anvil_rpc, token_address, pay_to, redis_url, port) as service:
        requirements = await x402c.probe(service.url + "/weather", egress=service.egress)
        stored = await x402c.sign(requirements, payer, policy)
        first = await x402c.send(service.url + "/weather", stored, egress=service.egress)
        assert first.settled and first.status == 200
    # a new process would start from nothing in memory: the record must come from Redis
    async with serve_paid(anvil_rpc, token_address, pay_to, redis_url, port) as service:
        replay = await x402c.send(service.url + "/weather", stored, egress=service.egress)
    assert replay.status == 200 and replay.headers.get("idempotent-replayed") == "true"
    assert replay.receipt == first.receipt
    assert await transfers_to(w3, token_address, pay_to) == [PRICE]  # one settlement on chain, not two
