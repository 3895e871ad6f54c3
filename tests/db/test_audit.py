"""The audit log is append-only (the database refuses changes) and hash-chained (verify finds tampering)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from paygent.db.audit import append_audit, chain_of, verify_chain
from paygent.db.migrate import upgrade
from tests.conftest import ADMIN_DATABASE_URL, _admin_execute, async_url


@pytest.fixture
def scratch_url():
    """A database of its own: this test breaks the chain on purpose."""
    name = f"paygent_audit_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    url = async_url(ADMIN_DATABASE_URL).rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    yield url
    asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _append(engine, n: int, subject: str | None = None) -> list[int]:
    """n rows, of n subjects (spread over chains) or all of one `subject` (one chain)."""
    ids = []
    for i in range(n):
        async with engine.begin() as conn:
            ids.append(
                await append_audit(
                    conn,
                    actor="bob",
                    channel="api",
                    action="approval.approved",
                    subject_type="approval",
                    subject_id=subject or f"a-{i}",
                    data={"amount_atomic": str(10**20 + i), "note": "ünïcode"},
                )
            )
    return ids


def _cli_verify(url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAYGENT_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "paygent.cli", "audit", "verify"], env=env, capture_output=True, text=True, timeout=60
    )


async def test_verify_passes_then_names_the_tampered_row(scratch_url):
    engine = create_async_engine(scratch_url)
    try:
        ids = await _append(engine, 5)
        async with engine.connect() as conn:
            result = await verify_chain(conn)
        assert result.ok and result.rows_checked == 5
        ok = _cli_verify(scratch_url)
        assert ok.returncode == 0 and "5 rows verified" in ok.stdout

        async with engine.begin() as conn:  # tamper behind the trigger's back, as an attacker with DDL would
            await conn.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete"))
            await conn.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE id = :id"), {"id": ids[2]})
            await conn.execute(sa.text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update_delete"))
        async with engine.connect() as conn:
            result = await verify_chain(conn)
        assert not result.ok and result.first_broken_id == ids[2] and result.rows_checked == 2
        broken = _cli_verify(scratch_url)
        assert broken.returncode == 1 and f"row {ids[2]}" in broken.stderr
    finally:
        await engine.dispose()


async def test_deleted_row_breaks_the_link(scratch_url):
    engine = create_async_engine(scratch_url)
    try:
        await _append(engine, 3)  # other subjects' rows, on other chains, in between
        ids = await _append(engine, 4, subject="one-approval")  # one subject: one chain
        async with engine.begin() as conn:
            await conn.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete"))
            await conn.execute(sa.text("DELETE FROM audit_log WHERE id = :id"), {"id": ids[1]})
            await conn.execute(sa.text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update_delete"))
        async with engine.connect() as conn:
            result = await verify_chain(conn)
        assert not result.ok and result.first_broken_id == ids[2] and "removed" in result.reason
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"]
)
async def test_database_refuses_changes(db_engine, statement):
    async with db_engine.begin() as conn:
        await append_audit(conn, actor="t", channel="system", action="test", subject_type="t", subject_id="1")
    with pytest.raises(DBAPIError, match="append-only"):
        async with db_engine.begin() as conn:
            await conn.execute(sa.text(statement))


async def test_concurrent_appends_keep_one_chain(scratch_url):
    engine = create_async_engine(scratch_url, pool_size=20)
    try:

        async def one(i):
            async with engine.begin() as conn:
                await append_audit(conn, actor=f"u{i}", channel="cli", action="x", subject_type="t", subject_id=str(i))

        await asyncio.gather(*(one(i) for i in range(40)))
        async with engine.connect() as conn:
            result = await verify_chain(conn)
        assert result.ok and result.rows_checked == 40
    finally:
        await engine.dispose()


def _two_chains() -> tuple[str, str]:
    """Two subjects of the same tenant that land on different chains."""
    first = chain_of(None, "t", "s-0")
    other = next(f"s-{i}" for i in range(1, 100) if chain_of(None, "t", f"s-{i}") != first)
    return "s-0", other


async def test_chains_append_without_waiting_for_each_other(scratch_url):
    """An open audited transaction holds up appends to its own chain only; all chains verify afterwards."""
    engine = create_async_engine(scratch_url, pool_size=5)
    busy, free = _two_chains()
    try:

        async def append(subject: str, tenant=None):
            async with engine.begin() as conn:
                return await append_audit(
                    conn,
                    actor="a",
                    channel="system",
                    action="x",
                    subject_type="t",
                    subject_id=subject,
                    tenant_id=tenant,
                )

        async with engine.connect() as holder:
            txn = await holder.begin()
            await append_audit(holder, actor="h", channel="system", action="x", subject_type="t", subject_id=busy)
            await asyncio.wait_for(append(free), timeout=10)  # another chain: not held up
            same = asyncio.ensure_future(append(busy))
            await asyncio.sleep(0.5)
            assert not same.done()  # the same chain waits for the holder's commit, so it links to its row
            await txn.commit()
        await asyncio.wait_for(same, timeout=10)
        await asyncio.gather(*(append(f"s-{i % 7}", tenant=uuid.uuid4() if i % 2 else None) for i in range(30)))
        async with engine.connect() as conn:
            result = await verify_chain(conn)
            chains = await conn.scalar(sa.text("SELECT count(DISTINCT chain) FROM audit_log"))
        assert result.ok and result.rows_checked == 33 and chains > 2
    finally:
        await engine.dispose()
