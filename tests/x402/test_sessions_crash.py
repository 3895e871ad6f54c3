"""The worker SIGKILLed in the middle of a session's paid request, then restarted: it pays exactly once.

The paid service's `/flaky` settles, then holds its answer: the worker is killed while it waits for it, after the
authorization was signed, stored and settled on chain. The restarted worker retries the request's workflow task,
finds the stored authorization and re-sends exactly it (same payment-identifier): the service answers from its
record and nothing is paid again.
"""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa

from paygent.db.schema import ledger_entries, payments
from tests.api.helpers import auth, token_balance, transfers_to
from tests.api.helpers import serve_api as serve
from tests.api.test_worker_crash import _kill
from tests.api.test_worker_crash import _worker_process as worker_process
from tests.x402.sessions import session_body


async def _signed_session_payment(db_engine, session_id: str, timeout: float = 30) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        async with db_engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(payments).where(payments.c.session_id == uuid.UUID(session_id))))
                .mappings()
                .first()
            )
        if row is not None and (row["details"] or {}).get("signed"):
            return dict(row)
        await asyncio.sleep(0.05)
    raise AssertionError("the session's request was never signed")


async def test_sigkill_during_a_session_fetch_then_restart_pays_once(
    app_settings, temporal_env, dev, db_engine, paid_service, monkeypatch
):
    # a task queue only the subprocess workers serve; they reach the paid service as an operator would allow it
    settings = app_settings.model_copy(update={"task_queue": f"crash-{uuid.uuid4().hex[:6]}"})
    monkeypatch.setenv("PAYGENT_EGRESS_ALLOW", settings.egress_allow)
    procs = [worker_process(settings)]
    try:
        async with serve(settings, temporal_env.client) as http:
            http.timeout = 90
            r = await http.post("/v1/x402/sessions", json=session_body(dev, paid_service.url), headers=auth(dev))
            assert r.status_code == 201 and r.json()["status"] == "active", r.text
            sid = r.json()["id"]
            fetching = asyncio.create_task(
                http.post(
                    f"/v1/x402/sessions/{sid}/fetch",
                    json={"url": f"{paid_service.url}/flaky"},
                    headers={**auth(dev), "Idempotency-Key": "crash-1"},
                )
            )
            row = await _signed_session_payment(db_engine, sid)
            for _ in range(200):  # settled on chain, its answer held back by the service
                if await token_balance(settings.rpc_url, settings.token_address, paid_service.pay_to) == 10_000:
                    break
                await asyncio.sleep(0.05)
            _kill(procs[0])
            assert not fetching.done()
            procs.append(worker_process(settings))
            answer = await fetching
    finally:
        for proc in procs:
            if proc.poll() is None:
                _kill(proc)
    assert answer.status_code == 200, answer.text
    assert answer.json()["paid"]["payment_id"] == str(row["id"])
    assert answer.json()["headers"].get("idempotent-replayed") == "true"  # answered from the service's record
    assert await transfers_to(settings.rpc_url, settings.token_address, paid_service.pay_to) == 1
    assert await token_balance(settings.rpc_url, settings.token_address, paid_service.pay_to) == 10_000
    async with db_engine.connect() as conn:
        final = (await conn.execute(sa.select(payments).where(payments.c.id == row["id"]))).mappings().one()
        entries = (
            await conn.execute(sa.select(sa.func.count()).where(ledger_entries.c.payment_id == row["id"]))
        ).scalar_one()
    assert final["status"] == "confirmed" and entries == 2
    assert final["details"]["signed"] == row["details"]["signed"]  # the same authorization, never a second one
