"""Bench: the RAG pipeline end to end (answer-cache hit vs miss), and HNSW vs exact search.

1. `RagQueryWorkflow` over the small test corpus with real workers: a miss runs every stage
   (the caches are emptied before each miss), an exact hit returns the stored answer before
   stage 1, a semantic hit after one embedding + pgvector lookup.
2. 100,000 chunks of synthetic 384-d vectors (clustered, unit length: real embeddings are
   clustered by topic, uniform random vectors are not, and HNSW behaves differently on them)
   searched through `activities.rag.search.vector_search` with the HNSW index at several
   `ef_search`, against the same query with index scans off (the exact top 10).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
from sqlalchemy import text

from activities.rag.search import vector_search
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.gateway import CallContext
from keel.contracts.rag import RagConfig, RagFilters, RagQueryRequest
from keel.runs import gateway_config
from keel.settings import Settings
from tests.bench.common import Entry, bench_stack, median_ms
from tests.support.rag_corpus import seed
from worker import build_worker

MISSES = 12
HITS = 30
CHUNKS = 100_000
DIM = 384
CLUSTERS = 500
QUERIES = 100
EXACT_QUERIES = 50
EF_SEARCH = (40, 100, 200, 400)
QUESTION = "How many vacation days do new employees get?"


def _p95_ms(samples: list[float]) -> float:
    return round(float(np.percentile(samples, 95)) * 1000, 3)


async def _latency(clients: Clients, settings: Settings, entry: Entry) -> None:
    tenant_id = await ensure_tenant(clients.engine, "bench-rag")
    await seed(clients.engine, tenant_id)
    context = CallContext(tenant="bench-rag", tenant_id=str(tenant_id), feature="rag")

    async def ask(question: str, rag: RagConfig = settings.rag) -> Any:
        started = time.perf_counter()
        answer = await clients.temporal.execute_workflow(
            "RagQueryWorkflow",
            RagQueryRequest(
                question=question,
                context=context,
                gateway=gateway_config(settings),
                rag=rag,
            ),
            id=f"bench-rag-{uuid.uuid4().hex}",
            task_queue=settings.task_queue_cpu,
            result_type=dict,
        )
        return time.perf_counter() - started, answer["cache_layer"]

    async def forget() -> None:
        async for key in clients.redis.scan_iter(match="keel:*"):
            await clients.redis.delete(key)
        async with clients.engine.begin() as conn:
            await conn.execute(text("DELETE FROM semantic_cache"))

    async with (
        build_worker(clients.temporal, "cpu", clients, settings),
        build_worker(clients.temporal, "gpu", clients, settings),
    ):
        await ask("What is the remote work policy?")  # warm workers, models, connections
        misses, hits, semantic = [], [], []
        for _ in range(MISSES):
            await forget()
            elapsed, layer = await ask(QUESTION)
            assert layer == "none", layer
            misses.append(elapsed)
        for _ in range(HITS):
            elapsed, layer = await ask(QUESTION)
            assert layer == "answer_exact", layer
            hits.append(elapsed)
        for _ in range(MISSES):
            elapsed, layer = await ask(QUESTION.lower().rstrip("?"))
            assert layer == "answer_semantic", layer
            semantic.append(elapsed)
        # The rescorer's sentence feature embeds ~50 sentences per query: free on a GPU,
        # the largest stage on a shared CPU. The same miss without it:
        lean = settings.rag.model_copy(update={"rescore_sentence_candidates": 0})
        lean_misses = []
        for _ in range(MISSES):
            await forget()
            elapsed, layer = await ask(QUESTION, lean)
            assert layer == "none", layer
            lean_misses.append(elapsed)
    entry.measurements["query, cache miss, ms (median)"] = median_ms(misses)
    entry.measurements["query, cache miss, ms (p95)"] = _p95_ms(misses)
    entry.measurements["query, cache miss, rescore without sentences, ms (median)"] = median_ms(
        lean_misses
    )
    entry.measurements["query, exact answer-cache hit, ms (median)"] = median_ms(hits)
    entry.measurements["query, exact answer-cache hit, ms (p95)"] = _p95_ms(hits)
    entry.measurements["query, semantic answer-cache hit, ms (median)"] = median_ms(semantic)
    entry.ratios["cache miss / exact hit (median latency)"] = median_ms(misses) / median_ms(hits)
    entry.ratios["cache miss / semantic hit (median latency)"] = median_ms(misses) / median_ms(
        semantic
    )


def _synthetic(rng: np.random.Generator, n: int, centers: np.ndarray[Any, Any]) -> Any:
    picks = rng.integers(0, len(centers), size=n)
    # Noise of norm ~0.8 around unit centres: a point's cosine to its centre is ~0.8 and to a
    # neighbour in its cluster ~0.6, like sentence embeddings of one topic, and clusters
    # overlap instead of forming islands HNSW cannot cross.
    vectors = centers[picks] + rng.normal(0, 0.8 / np.sqrt(DIM), size=(n, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


async def _load(clients: Clients, tenant_id: uuid.UUID, vectors: Any) -> float:
    """Bulk-load chunks (generated server-side) and one window each (binary COPY), then build
    the HNSW index (faster than inserting into a live index); returns the build time."""
    from pgvector.psycopg import register_vector_async

    async with clients.engine.begin() as conn:
        await conn.execute(text("DROP INDEX IF EXISTS chunk_windows_embedding_hnsw"))
        document = (
            await conn.execute(
                text(
                    "INSERT INTO documents (tenant_id, source, title, content_hash) "
                    "VALUES (:t, 'synthetic', 'synthetic', 'x') RETURNING id"
                ),
                {"t": tenant_id},
            )
        ).scalar_one()
        ids = (
            await conn.execute(
                text(
                    "INSERT INTO chunks (tenant_id, document_id, position, text, token_count) "
                    "SELECT :t, :d, g, 'c', 1 FROM generate_series(0, :n - 1) g "
                    "RETURNING id, position"
                ),
                {"t": tenant_id, "d": document, "n": len(vectors)},
            )
        ).all()
        by_position = {position: chunk_id for chunk_id, position in ids}
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await register_vector_async(driver)
        async with driver.cursor().copy(
            "COPY chunk_windows (chunk_id, window_index, tenant_id, embedding) "
            "FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int4", "uuid", "vector"])
            for position, vector in enumerate(vectors):
                await copy.write_row((by_position[position], 0, tenant_id, vector))
    started = time.perf_counter()
    async with clients.engine.begin() as conn:
        await conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        await conn.execute(text("SET LOCAL max_parallel_maintenance_workers = 2"))
        await conn.execute(
            text(
                "CREATE INDEX chunk_windows_embedding_hnsw ON chunk_windows "
                "USING hnsw (embedding vector_cosine_ops)"
            )
        )
        await conn.execute(text("ANALYZE chunk_windows"))
        await conn.execute(text("ANALYZE chunks"))
    return time.perf_counter() - started


async def _hnsw(clients: Clients, entry: Entry) -> None:
    rng = np.random.default_rng(42)
    centers = rng.normal(size=(CLUSTERS, DIM))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    tenant_id = await ensure_tenant(clients.engine, "bench-ann")
    build = await _load(clients, tenant_id, _synthetic(rng, CHUNKS, centers))
    queries = _synthetic(rng, QUERIES, centers)

    async def search(vector: Any, *, exact: bool = False, ef: int = 100) -> list[int]:
        hits = await vector_search(
            clients.engine,
            tenant_id=tenant_id,
            vector=vector,
            filters=RagFilters(),
            k=10,
            ef_search=ef,
            exact=exact,
        )
        return [h.chunk_id for h in hits]

    started = time.perf_counter()
    truth = [await search(q, exact=True) for q in queries[:EXACT_QUERIES]]
    exact_qps = EXACT_QUERIES / (time.perf_counter() - started)
    entry.measurements[f"HNSW index build, {CHUNKS:,} x {DIM}, s"] = round(build, 1)
    entry.measurements["exact scan QPS (top 10)"] = round(exact_qps, 1)
    for ef in EF_SEARCH:
        await search(queries[0], ef=ef)  # warm the index pages
        started = time.perf_counter()
        found = [await search(q, ef=ef) for q in queries]
        qps = QUERIES / (time.perf_counter() - started)
        recall = np.mean(
            [len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=False)]
        )
        entry.measurements[f"HNSW ef_search={ef}: recall@10"] = round(float(recall), 4)
        entry.measurements[f"HNSW ef_search={ef}: QPS"] = round(qps, 1)
        entry.ratios[f"HNSW ef_search={ef} QPS / exact QPS"] = qps / exact_qps


async def run() -> Entry:
    entry = Entry(name="RAG: query latency by cache layer; HNSW vs exact at 100k chunks")
    with bench_stack() as settings:
        clients = await Clients.connect(settings)
        try:
            await _latency(clients, settings, entry)
            await _hnsw(clients, entry)
        finally:
            await clients.close()
    entry.notes.append(
        "Latency is client-side `execute_workflow` time on the embedded stack (Temporal dev "
        "server on SQLite), offline provider, test corpus of 10 passages; a miss runs all six "
        "stages with the caches emptied first."
    )
    entry.notes.append(
        f"HNSW: {CHUNKS:,} chunks of clustered synthetic unit vectors ({CLUSTERS} clusters), "
        "default m=16 / ef_construction=64, searched with the pipeline's own vector_search "
        "(top 10, best window per chunk, one window per chunk here, which fetches 40 windows "
        "and so raises ef_search to at least 40); recall@10 against the "
        f"exact top 10 (index scans off) over {EXACT_QUERIES} queries; QPS of one sequential "
        "client."
    )
    return entry
