"""Rotating keys as the runbook says, on a database of its own: `paygent keys rotate-master` re-seals every
wallet key (the worker then signs with the new key only), `paygent keys rotate-user-key` retires an API key
on the next request. The commands run as subprocesses, exactly as an operator types them."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from pydantic import SecretStr

from paygent.chain.anvil import dev_account
from paygent.chain.rpc import async_web3
from paygent.chain.token import mint, send_eth
from paygent.crypto import decode_master_key, new_master_key
from paygent.db.accounts import load_signer
from paygent.db.engine import async_url, get_engine
from paygent.db.migrate import upgrade
from paygent.db.roles import grant_app_role
from paygent.db.schema import audit_log
from paygent.db.seed import seed_dev
from paygent.paths import REPO_ROOT
from tests.api.helpers import create, new_recipient, payment_body, serve_api, wait_final
from tests.conftest import _admin_execute
from workers.main import build_worker


@pytest.fixture(scope="module")
def own_database(database_url):
    name = f"paygent_keys_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    url = f"{database_url.rsplit('/', 1)[0]}/{name}"
    upgrade(url)
    yield url
    asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def keys_cli(database_url: str, master_key: str, *args: str, owner_url: str | None = None):
    """`paygent keys ...` with the application's DATABASE_URL and the owner's URL, as an operator runs it."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PAYGENT_MASTER_KEY": master_key,
        "PAYGENT_MIGRATE_DATABASE_URL": owner_url or database_url,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "paygent.cli",
        "keys",
        *args,
        cwd=str(REPO_ROOT),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


async def test_master_key_rotation_reseals_wallets_and_payments_still_sign(
    own_database, app_settings, temporal_env, tmp_path
):
    old = new_master_key()
    seeded = await seed_dev(own_database, decode_master_key(old), tenant_name="rotation")
    treasury = seeded["wallets"]["treasury"]
    w3 = async_web3(app_settings.rpc_url)
    await send_eth(w3, dev_account(0), treasury["address"], 10**18)
    await mint(w3, app_settings.token_address, dev_account(0), treasury["address"], 100 * 10**6)

    new_file = tmp_path / "new.key"
    app_url = async_url(await grant_app_role(own_database))  # the worker and the API: row-level security holds
    code, out, err = await keys_cli(app_url, old, "new-master-key", "--out", str(new_file), owner_url=own_database)
    assert code == 0 and oct(new_file.stat().st_mode & 0o777) == "0o600", err
    new = new_file.read_text().strip()
    assert new not in out
    code, out, err = await keys_cli(
        app_url, old, "rotate-master", "--new-key-file", str(new_file), "--actor", "ops-test", owner_url=own_database
    )
    assert code == 0, err
    assert "wallet keys re-sealed: 2; already under the new key: 0" in out
    code, out, _ = await keys_cli(
        app_url, old, "rotate-master", "--new-key-file", str(new_file), owner_url=own_database
    )
    assert code == 0 and "re-sealed: 0; already under the new key: 2" in out  # resumable, idempotent

    engine = get_engine(own_database)
    async with engine.connect() as conn:
        wallet_id = uuid.UUID(treasury["id"])
        assert (await load_signer(conn, wallet_id, decode_master_key(new))).address == treasury["address"]
        with pytest.raises(InvalidTag):
            await load_signer(conn, wallet_id, decode_master_key(old))
        audited = (
            await conn.execute(
                sa.select(audit_log.c.actor, audit_log.c.data).where(audit_log.c.action == "wallets.master_key_rotated")
            )
        ).all()
    assert [(a, d) for a, d in audited] == [("ops-test", {"wallets": 2})]

    settings = app_settings.model_copy(
        update={
            "database_url": app_url,
            "migrate_database_url": own_database,
            "master_key": SecretStr(new),
            "task_queue": f"rotation-{uuid.uuid4().hex[:6]}",
        }
    )
    async with (
        build_worker(temporal_env.client, settings, get_engine(app_url)),
        serve_api(settings, temporal_env.client) as http,
    ):
        r = await create(http, seeded, payment_body(seeded, new_recipient(), amount="2"))
        assert r.status_code == 202, r.text
        assert (await wait_final(http, seeded, r.json()["id"]))["status"] == "confirmed"


async def test_user_key_rotation_retires_the_old_key_at_once(api_url, http, dev, app_settings):
    tenant = await seed_dev(
        app_settings.owner_database_url(), app_settings.master_key_bytes(), tenant_name=f"keys-{uuid.uuid4().hex[:6]}"
    )
    old_key = tenant["users"]["bob"]["api_key"]
    assert (await http.get("/v1/approvals", headers={"Authorization": f"Bearer {old_key}"})).status_code == 200
    owner = app_settings.owner_database_url()
    code, out, err = await keys_cli(
        app_settings.database_url,
        app_settings.master_key.get_secret_value(),
        "rotate-user-key",
        "bob",
        "--tenant",
        tenant["tenant"]["name"],
        owner_url=owner,
    )
    assert code == 0, err
    new_key = out.strip()
    assert new_key.startswith("pgk_") and "shown once" in err and new_key not in err
    assert (await http.get("/v1/approvals", headers={"Authorization": f"Bearer {old_key}"})).status_code == 401
    assert (await http.get("/v1/approvals", headers={"Authorization": f"Bearer {new_key}"})).status_code == 200
    code, _, err = await keys_cli(
        app_settings.database_url,
        app_settings.master_key.get_secret_value(),
        "rotate-user-key",
        "nobody",
        "--tenant",
        tenant["tenant"]["name"],
        owner_url=owner,
    )
    assert code == 1 and "no user 'nobody'" in err
