"""The real services the suite relies on answer."""

import sqlalchemy as sa
from web3 import AsyncWeb3


async def test_services_answer(db_engine, redis_url, anvil_rpc, temporal_env):
    async with db_engine.connect() as conn:
        assert await conn.scalar(sa.text("select count(*) from audit_log")) == 0
    w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(anvil_rpc))
    assert await w3.eth.chain_id == 31337
    assert (await temporal_env.client.service_client.check_health())
