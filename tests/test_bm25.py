"""Keyword search at scale: Keel's BM25 postings against an exact reference, and term
statistics that stay right through every write, a cascade and a writer killed mid-upsert."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.rag import bm25
from activities.rag.search import filter_sql, keyword_search
from activities.store import ChunkRecord, delete_document, upsert_document
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.rag import RagFilters
from keel.settings import Settings
from tests.support import scale_corpus
from tests.support.bm25_reference import lexemes, recall_at_k, reference
from tests.support.worker_process import REPO

CHUNKS = 2_000
QUESTIONS = 40


async def _stats_drift(engine: AsyncEngine, tenant_id: uuid.UUID) -> dict[str, int]:
    """Differences between the kept statistics and a recount from the chunks (all 0 = right)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    """
                    WITH truth AS (
                        SELECT c.id, u.lexeme, greatest(1, cardinality(u.positions)) AS tf
                        FROM chunks c, unnest(c.tsv) u WHERE c.tenant_id = :t
                    ), df AS (SELECT lexeme, count(*) AS df FROM truth GROUP BY lexeme)
                    SELECT
                      (SELECT count(*) FROM df FULL JOIN
                         (SELECT lexeme, df FROM bm25_terms WHERE tenant_id = :t AND df > 0) k
                         USING (lexeme) WHERE df.df IS DISTINCT FROM k.df),
                      (SELECT count(*) FROM truth t FULL JOIN
                         (SELECT b.lexeme, p.chunk_id, p.tf FROM bm25_postings p
                          JOIN bm25_terms b ON b.id = p.term_id WHERE b.tenant_id = :t) k
                         ON k.lexeme = t.lexeme AND k.chunk_id = t.id
                         WHERE t.tf IS DISTINCT FROM k.tf),
                      (SELECT count(*) FROM chunks WHERE tenant_id = :t)
                        - coalesce((SELECT chunk_count FROM bm25_tenants WHERE tenant_id = :t), 0),
                      (SELECT coalesce(sum(tf), 0) FROM truth)
                        - coalesce((SELECT length_total FROM bm25_tenants WHERE tenant_id = :t), 0)
                    """
                ),
                {"t": tenant_id},
            )
        ).one()
    return {"df": row[0], "postings": row[1], "chunks": row[2], "length": row[3]}


@pytest.fixture(scope="module")
async def scale_tenant(clients: Clients) -> tuple[uuid.UUID, list[scale_corpus.Fact]]:
    tenant_id = await ensure_tenant(clients.engine, f"t-bm25-{uuid.uuid4().hex[:8]}")
    pool = scale_corpus.load_pool()
    facts = await scale_corpus.store(
        clients.engine, pool, tenant_id=tenant_id, seed=11, start=0, count=CHUNKS
    )
    return tenant_id, facts


async def test_top_50_matches_exact_bm25_over_the_same_tokens(
    clients: Clients, scale_tenant: tuple[uuid.UUID, list[scale_corpus.Fact]]
) -> None:
    tenant_id, facts = scale_tenant
    exact = await reference(clients.engine, tenant_id)
    pool = scale_corpus.load_pool()
    recalls = []
    for question in scale_corpus.questions(pool, seed=3, count=QUESTIONS):
        scores = exact.scores(await lexemes(clients.engine, question))
        hits = await keyword_search(
            clients.engine, tenant_id=tenant_id, query=question, filters=RagFilters(), k=50
        )
        recalls.append(recall_at_k([h.chunk_id for h in hits], scores, 50))
        for hit in hits:  # every score is BM25's, not an approximation of it
            assert hit.score == pytest.approx(scores[hit.chunk_id], rel=1e-6)
        # The threshold algorithm (what filtered searches use) agrees too.
        async with clients.engine.connect() as conn:
            stats = await bm25.load_stats(conn, tenant_id, question)
            assert stats is not None
            state = await bm25.top_k(conn, stats, k=50)
        recalls.append(recall_at_k([c for c, _ in state.best()], scores, 50))
    assert sum(recalls) / len(recalls) >= 0.99, recalls

    # A metadata filter: the same statistics, only the chunks that pass.
    question = "How many days of annual leave can employees carry over?"
    scores = exact.scores(await lexemes(clients.engine, question), department="HR")
    hits = await keyword_search(
        clients.engine,
        tenant_id=tenant_id,
        query=question,
        filters=RagFilters(departments=["hr"]),
        k=50,
    )
    assert hits and recall_at_k([h.chunk_id for h in hits], scores, 50) >= 0.99
    where, params = filter_sql(RagFilters(departments=["hr"]))
    async with clients.engine.connect() as conn:  # the path of filters that pass many chunks
        stats = await bm25.load_stats(conn, tenant_id, question)
        assert stats is not None
        state = await bm25.top_k(conn, stats, k=50, where=where, params=params)
    assert recall_at_k([c for c, _ in state.best()], scores, 50) >= 0.99

    # A unique identifier among near-duplicates comes back first, every time.
    for fact in facts[:10]:
        hits = await keyword_search(
            clients.engine, tenant_id=tenant_id, query=fact.question, filters=RagFilters(), k=5
        )
        async with clients.engine.connect() as conn:
            top = (
                await conn.execute(
                    text("SELECT text FROM chunks WHERE id = :i"), {"i": hits[0].chunk_id}
                )
            ).scalar_one()
        assert fact.sentence in top


async def _inserting(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        busy = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO chunk%' "
                "AND state <> 'idle' AND pid <> pg_backend_pid()"
            )
        )
        return bool(busy.scalar_one())


def _chunk(position: int, words: str) -> ChunkRecord:
    vector = [0.0] * 383 + [1.0]
    return ChunkRecord(
        position=position, text=words, token_count=8, embedding=vector, windows=[vector]
    )


async def test_statistics_follow_inserts_updates_deletes_and_cascades(
    clients: Clients, tenant: str
) -> None:
    engine = clients.engine
    tenant_id = await ensure_tenant(engine, tenant)
    for n in range(3):
        await upsert_document(
            engine,
            tenant_id=tenant_id,
            source=f"doc-{n}",
            title="",
            metadata={},
            content_hash=f"v1-{n}",
            chunks=[_chunk(i, f"badge visitor laptop loan {n} {i} badge") for i in range(5)],
        )
    assert await _stats_drift(engine, tenant_id) == dict.fromkeys(
        ("df", "postings", "chunks", "length"), 0
    )
    await upsert_document(  # a changed document: its chunks are replaced
        engine,
        tenant_id=tenant_id,
        source="doc-1",
        title="",
        metadata={},
        content_hash="v2",
        chunks=[_chunk(0, "entirely different wording about invoices")],
    )
    await delete_document(engine, tenant_id=tenant_id, source="doc-2")
    async with engine.begin() as conn:  # an edit in place is caught too
        await conn.execute(
            text("UPDATE chunks SET text = 'invoices again' WHERE tenant_id = :t AND position = 0"),
            {"t": tenant_id},
        )
    assert await _stats_drift(engine, tenant_id) == dict.fromkeys(
        ("df", "postings", "chunks", "length"), 0
    )
    hits = await keyword_search(
        engine, tenant_id=tenant_id, query="visitor badge", filters=RagFilters()
    )
    assert len(hits) == 4  # doc-0's five minus its edited chunk 0 ... and none of doc-1/doc-2
    async with engine.begin() as conn:
        terms = (
            await conn.execute(
                text("SELECT array_agg(id) FROM bm25_terms WHERE tenant_id = :t"), {"t": tenant_id}
            )
        ).scalar_one()
        await conn.execute(text("DELETE FROM tenants WHERE id = :t"), {"t": tenant_id})
        left = (
            await conn.execute(
                text("SELECT count(*) FROM bm25_postings WHERE term_id = ANY(:ids)"), {"ids": terms}
            )
        ).scalar_one()
    assert left == 0


async def test_cached_lists_never_outlive_a_write(clients: Clients, tenant: str) -> None:
    engine = clients.engine
    tenant_id = await ensure_tenant(engine, tenant)
    await upsert_document(
        engine,
        tenant_id=tenant_id,
        source="a",
        title="",
        metadata={},
        content_hash="a",
        chunks=[_chunk(i, f"gantry crane inspection {i}") for i in range(3)],
    )
    first = await keyword_search(engine, tenant_id=tenant_id, query="gantry", filters=RagFilters())
    assert len(first) == 3  # the list of "gantri" is now cached in this process
    await upsert_document(
        engine,
        tenant_id=tenant_id,
        source="b",
        title="",
        metadata={},
        content_hash="b",
        chunks=[_chunk(0, "gantry gantry gantry")],
    )
    second = await keyword_search(engine, tenant_id=tenant_id, query="gantry", filters=RagFilters())
    assert len(second) == 4 and second[0].chunk_id not in {h.chunk_id for h in first}
    await delete_document(engine, tenant_id=tenant_id, source="b")
    third = await keyword_search(engine, tenant_id=tenant_id, query="gantry", filters=RagFilters())
    assert [h.chunk_id for h in third] == [h.chunk_id for h in first]


async def test_writer_killed_mid_upsert_leaves_statistics_right(
    clients: Clients, base_settings: Settings, tenant: str
) -> None:
    engine = clients.engine
    tenant_id = await ensure_tenant(engine, tenant)
    await upsert_document(
        engine,
        tenant_id=tenant_id,
        source="kept",
        title="",
        metadata={},
        content_hash="kept",
        chunks=[_chunk(i, f"quarantine zyzzogeton kept {i}") for i in range(20)],
    )
    before = await keyword_search(
        engine, tenant_id=tenant_id, query="quarantine zyzzogeton", filters=RagFilters()
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.slow_upsert",
        base_settings.database_dsn,
        str(tenant_id),
        "killed",
        "20000",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert process.stdout is not None
        assert (await process.stdout.readline()).strip() == b"writing"
        # Kill once the chunk insert (and so the statistics trigger) is running in Postgres.
        for _ in range(600):
            if await _inserting(engine):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the upsert never reached the chunk insert")
        process.kill()
    finally:
        await asyncio.wait_for(process.wait(), 10)
    for _ in range(200):  # Postgres notices the dead client and rolls its transaction back
        if not await _inserting(engine):
            break
        await asyncio.sleep(0.05)
    assert await _stats_drift(engine, tenant_id) == dict.fromkeys(
        ("df", "postings", "chunks", "length"), 0
    )
    after = await keyword_search(
        engine, tenant_id=tenant_id, query="quarantine zyzzogeton", filters=RagFilters()
    )
    assert after == before and len(after) == 20


def test_posting_lists_parse_whole_or_not_at_all() -> None:
    # Lists arrive as `string_agg(..., ',')` text; a list cut short would score chunks wrong.
    assert bm25.parse_ints("1,2,30,9007199254740993").tolist() == [1, 2, 30, 9007199254740993]
    assert bm25.parse_ints("7").tolist() == [7]
    for bad in ("1,x,3", "", "1,,2", "1.5,2"):
        with pytest.raises(ValueError):
            bm25.parse_ints(bad)
