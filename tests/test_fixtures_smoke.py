"""The real services the suite relies on answer, at the schema and chain it expects."""

import sqlalchemy as sa

from paygent.chain.rpc import async_web3


async def test_services_answer(db_engine, redis_url, anvil_rpc, temporal_env):
    async with db_engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    assert {"tenants", "users", "wallets", "payments", "ledger_entries", "audit_log", "reservations"} <= tables
    w3 = async_web3(anvil_rpc)
    assert await w3.eth.chain_id == 31337
    assert await temporal_env.client.service_client.check_health()
