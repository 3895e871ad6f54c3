"""Semantic recall: the offline lexical embedding, the OpenAI SDK against the fake server (vectors stored with the
model's name, never compared across models), and the store with Redis down."""

from __future__ import annotations

import sqlalchemy as sa
from pydantic import SecretStr

from paygent.db.memory_schema import memory_texts
from paygent.memory.embedding import LOCAL_MODEL, OPENAI_MODEL, normalise
from tests.api.helpers import serve_api
from tests.fakes.llm_server import OPENAI_TEST_KEY, fake_embedding
from tests.memory.helpers import bearer, get, private, put


async def _recall(http, key, scope, query, k=3):
    answer = await http.post("/v1/memory/recall", json={"scope": scope, "query": query, "k": k}, headers=bearer(key))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_offline_embedding_finds_a_fact_from_a_paraphrase_sharing_words(http, dev, db_engine):
    alice = dev["users"]["alice"]["api_key"]
    scope = private()
    facts = [
        "The supplier invoices are paid every Friday from the treasury wallet",
        "Lisbon weather forecasts cost one cent per request",
        "Bob approves payments above one thousand USDC",
    ]
    for text in facts[:2]:
        answer = await http.post("/v1/memory/texts", json={"scope": scope, "text": text}, headers=bearer(alice))
        assert answer.status_code == 201, answer.text
    assert (await put(http, alice, scope, "approvals/rule", facts[2])).status_code == 200  # a text value (PUT)
    found = await _recall(http, alice, scope, "which weekday do we pay supplier invoices?")
    assert found["model"] == LOCAL_MODEL
    assert found["results"][0]["text"] == facts[0]
    found = await _recall(http, alice, scope, "who approves large payments")
    assert found["results"][0]["text"] == facts[2] and found["results"][0]["key"] == "approvals/rule"
    async with db_engine.connect() as conn:  # where the server offers pgvector, the migration made the HNSW index
        offered = await conn.scalar(sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"))
    assert found["index"] == ("hnsw" if offered else "exact_scan")
    # the item's text goes with the item
    await http.delete("/v1/memory/items", params={"scope": scope, "key": "approvals/rule"}, headers=bearer(alice))
    found = await _recall(http, alice, scope, "who approves large payments")
    assert facts[2] not in [r["text"] for r in found["results"]]


async def test_the_models_vectors_are_stored_with_its_name_and_not_mixed(
    app_settings, temporal_env, worker, dev, fake_llm, db_engine
):
    alice = dev["users"]["alice"]["api_key"]
    scope = private()
    settings = app_settings.model_copy(
        update={"openai_api_key": SecretStr(OPENAI_TEST_KEY), "openai_base_url": fake_llm.base_url + "/v1"}
    )
    async with serve_api(app_settings, temporal_env.client) as local:  # the offline model first
        assert (
            await local.post("/v1/memory/texts", json={"scope": scope, "text": "ledger"}, headers=bearer(alice))
        ).status_code == 201
    async with serve_api(settings, temporal_env.client) as http:
        stored = await http.post(
            "/v1/memory/texts", json={"scope": scope, "text": "settle the ledger"}, headers=bearer(alice)
        )
        assert stored.json()["model"] == OPENAI_MODEL
        found = await _recall(http, alice, scope, "settle the ledger")
    assert found["model"] == OPENAI_MODEL
    assert [r["text"] for r in found["results"]] == ["settle the ledger"]  # the local-model row is not compared
    assert found["results"][0]["score"] > 0.999
    asked = [r for r in fake_llm.requests("openai") if r.path == "/v1/embeddings"]
    assert [r.body["model"] for r in asked] == [OPENAI_MODEL, OPENAI_MODEL]
    assert all(r.body["dimensions"] == 384 for r in asked)
    async with db_engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(memory_texts.c.model, memory_texts.c.embedding).where(
                    memory_texts.c.scope == scope.removeprefix("private/")
                )
            )
        ).all()
    by_model = {r.model: r.embedding for r in rows}
    assert set(by_model) == {LOCAL_MODEL, OPENAI_MODEL}
    expected = normalise(fake_embedding("settle the ledger", 384))
    assert max(abs(a - b) for a, b in zip(by_model[OPENAI_MODEL], expected, strict=True)) < 1e-6


async def test_with_redis_down_reads_and_writes_still_work_and_stay_right(app_settings, temporal_env, worker, dev):
    alice = dev["users"]["alice"]["api_key"]
    scope = private()
    async with serve_api(app_settings, temporal_env.client) as http:
        await put(http, alice, scope, "k", "v1")
        assert (await get(http, alice, scope, "k")).json()["cached"] is False
        assert (await get(http, alice, scope, "k")).json()["cached"] is True
    down = app_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    async with serve_api(down, temporal_env.client) as http:
        assert (await put(http, alice, scope, "k", "v2")).status_code == 200
        got = (await get(http, alice, scope, "k")).json()
        assert (got["value"], got["cached"]) == ("v2", False)
        stats = (await http.get("/v1/memory/stats", params={"scope": scope}, headers=bearer(alice))).json()
        assert stats["keys"] == 1 and stats["reads_last_hour"] is None
        found = await _recall(http, alice, scope, "v2")
        assert found["results"][0]["key"] == "k"


async def test_the_index_and_the_exact_scan_agree_on_a_small_scope(http, dev, app_settings, db_engine):
    import uuid as _uuid

    from paygent.memory.access import private_place
    from paygent.memory.embedding import Embedder
    from paygent.memory.recall import recall
    from paygent.memory.scope import parse_scope
    from paygent.memory.store import MemoryStore

    alice = dev["users"]["alice"]["api_key"]
    scope = private()
    texts = [f"{w} report for week {n}" for n, w in enumerate(("sales", "refund", "shipping", "payroll", "tax"))]
    for text in texts:
        assert (
            await http.post("/v1/memory/texts", json={"scope": scope, "text": text}, headers=bearer(alice))
        ).status_code == 201
    store = MemoryStore(db_engine, None, Embedder(LOCAL_MODEL))
    place = private_place(_uuid.UUID(dev["tenant"]["id"]), _uuid.UUID(dev["users"]["alice"]["id"]), parse_scope(scope))
    indexed = await recall(store, place, "refund report", 5)
    exact = await recall(store, place, "refund report", 5, exact=True)
    assert exact["index"] == "exact_scan"
    assert [r["text"] for r in indexed["results"]] == [r["text"] for r in exact["results"]]
    assert indexed["results"][0]["text"] == "refund report for week 1"
