"""When Postgres refuses connections (its slots are full, or the role's limit is reached), the API answers 503
with Retry-After and records nothing: a client may send the same request again, unlike after a 500."""

from __future__ import annotations

import uuid

import asyncpg
import sqlalchemy as sa

from paygent.db.engine import async_url
from paygent.db.roles import grant_app_role
from paygent.db.schema import payments
from tests.api.helpers import create, new_recipient, payment_body, serve_api


async def test_a_refused_database_connection_is_503_with_retry_after_and_nothing_recorded(
    app_settings, temporal_env, dev, database_url, db_engine
):
    role = f"paygent_full_{uuid.uuid4().hex[:8]}"
    plain = database_url.replace("postgresql+asyncpg://", "postgresql://")
    url = await grant_app_role(plain, role=role)
    owner = await asyncpg.connect(plain)
    try:
        await owner.execute(f"ALTER ROLE {role} CONNECTION LIMIT 0")  # every connection as this role is refused
        async with db_engine.connect() as conn:
            before = (await conn.execute(sa.select(sa.func.count()).select_from(payments))).scalar_one()

        settings = app_settings.model_copy(update={"database_url": async_url(url)})
        async with serve_api(settings, temporal_env.client) as http:
            key = uuid.uuid4().hex
            answer = await create(http, dev, payment_body(dev, new_recipient(), "1"), key=key)
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"] == "1"
            assert answer.json()["error"]["code"] == "database_busy"

        async with db_engine.connect() as conn:
            after = (await conn.execute(sa.select(sa.func.count()).select_from(payments))).scalar_one()
        assert after == before  # nothing recorded: the same key can be sent again
    finally:
        await owner.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
        await owner.execute(f"DROP OWNED BY {role}")
        await owner.execute(f"DROP ROLE IF EXISTS {role}")
        await owner.close()
