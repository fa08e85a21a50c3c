"""Stages 2 and 3 of the RAG pipeline: vector search, keyword search, and their fusion.

Plain async functions over an engine, so the activities and the evaluation harness run the
very same queries.

Vector search runs over `chunk_windows` (all-MiniLM-L6-v2 reads 256 word pieces, so a chunk is
stored as overlapping windows) and scores each chunk by its best window. Tenant and metadata
filters sit in the same query as the HNSW scan; with pgvector 0.8's iterative scans
(`hnsw.iterative_scan = relaxed_order`) the index keeps walking the graph until enough rows pass
the filters, so a selective filter (one tenant among many, one department) still returns k rows
instead of the few that happened to be among the first `ef_search` neighbours.

Keyword search is BM25 over the postings Keel keeps beside Postgres full text
(`activities.rag.bm25`): the question's lexemes (english stemming, stopwords dropped) are OR-ed,
so a chunk needs only some of them; each matching lexeme weighs its inverse document frequency
within the tenant, `ln(1 + (N - df + 0.5) / (df + 0.5))`, times a saturating, length-normalised
term frequency (k1 = 1.2, b = 0.75). Impact-ordered lists and an exact stopping bound read a
few hundred postings per lexeme instead of every chunk that holds a common word.
`ts_rank_cd` (cover density, no IDF, a scan of every match) remains for comparison.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.rag import bm25, bm25_lists
from keel.contracts.rag import Hit, IterativeScan, KeywordScoring, RagFilters

# A chunk has up to ~3 windows (512 tokens in windows of 254 with 32 overlap): fetch enough
# windows that k distinct chunks survive the best-window grouping.
WINDOWS_PER_CHUNK = 4


def encode_vector(vector: NDArray[np.float32] | Sequence[float]) -> str:
    """A vector as base64 of float32 little-endian: 2 KB for 384 dims in history."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def decode_vector(encoded: str) -> NDArray[np.float32]:
    return np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(np.float32)


def pg_vector(vector: NDArray[np.float32]) -> str:
    """pgvector's text form."""
    return "[" + ",".join(f"{float(v):.7g}" for v in vector) + "]"


def filter_sql(filters: RagFilters, alias: str = "c") -> tuple[str, dict[str, Any]]:
    """SQL conditions (each starting with AND) and their parameters for `filters`.

    Dates compare as ISO strings on the first 10 characters of the chunk's `date` metadata; a
    chunk without a date never passes a date filter. Departments and types match case-blind.
    """
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if filters.date_from is not None:
        clauses.append(f"AND left({alias}.metadata->>'date', 10) >= :date_from")
        params["date_from"] = filters.date_from.isoformat()
    if filters.date_to is not None:
        clauses.append(f"AND left({alias}.metadata->>'date', 10) <= :date_to")
        params["date_to"] = filters.date_to.isoformat()
    if filters.departments:
        clauses.append(f"AND lower({alias}.metadata->>'department') = ANY(:departments)")
        params["departments"] = [d.lower() for d in filters.departments]
    if filters.doc_types:
        clauses.append(f"AND lower({alias}.metadata->>'doc_type') = ANY(:doc_types)")
        params["doc_types"] = [d.lower() for d in filters.doc_types]
    return " ".join(clauses), params


async def vector_search(
    engine: AsyncEngine,
    *,
    tenant_id: uuid.UUID,
    vector: NDArray[np.float32],
    filters: RagFilters,
    k: int = 50,
    ef_search: int = 100,
    iterative_scan: IterativeScan = "relaxed_order",
    exact: bool = False,
) -> list[Hit]:
    """The tenant's `k` chunks nearest to `vector` (cosine of the best window), best first.

    Args:
        engine: the database.
        tenant_id: only this tenant's chunks are searched.
        vector: unit query vector from the same embedder as the stored windows.
        filters: metadata filters.
        k: chunks to return.
        ef_search: HNSW candidate list; raised to the number of windows fetched when lower,
            since HNSW never returns more rows than `ef_search` in one pass.
        iterative_scan: pgvector 0.8 iterative index scans ("off" for the classic behaviour).
            A filter that passes at most `EXACT_FILTERED_CHUNKS` chunks is searched exactly.
        exact: skip the index (ordering by `distance + 0`, which no index provides): the
            ground truth the bench compares with. Not a session setting: psycopg prepares
            repeated statements, and a plan made with index scans disabled would be reused.

    Returns:
        Hits with `score` = `vector` = best-window cosine.
    """
    where, params = filter_sql(filters)
    windows = k * WINDOWS_PER_CHUNK
    async with engine.begin() as conn:
        if where and not exact:
            exact = await _selective(conn, tenant_id, where, params)
        await conn.execute(
            text(
                "SELECT set_config('hnsw.ef_search', :ef, true), "
                "set_config('hnsw.iterative_scan', :scan, true)"
            ),
            {"ef": str(min(1000, max(ef_search, windows))), "scan": iterative_scan},
        )
        rows = (
            await conn.execute(
                text(
                    f"""
                    WITH nearest AS (
                        SELECT w.chunk_id, w.embedding <=> CAST(:v AS vector) AS distance
                        FROM chunk_windows w JOIN chunks c ON c.id = w.chunk_id
                        WHERE w.tenant_id = :t AND c.tenant_id = :t {where}
                        ORDER BY (w.embedding <=> CAST(:v AS vector)){" + 0" if exact else ""}
                        LIMIT :windows
                    )
                    SELECT chunk_id, 1 - min(distance) AS score
                    FROM nearest GROUP BY chunk_id ORDER BY score DESC, chunk_id LIMIT :k
                    """
                ),
                {**params, "v": pg_vector(vector), "t": tenant_id, "windows": windows, "k": k},
            )
        ).all()
    return [Hit(chunk_id=int(r[0]), score=float(r[1]), vector=float(r[1])) for r in rows]


# A filter that leaves at most this many of the tenant's chunks is searched exactly. The HNSW
# graph is walked from the query's neighbourhood; when the filter correlates with topic (a
# department, a doc type) the passing chunks lie far from it, and the walk gives up
# (`hnsw.max_scan_tuples`) with the wrong rows: recall@10 0.29 at 100k chunks for one
# department of eight. An exact scan of ~20k chunks' windows is ~100 ms and always right.
EXACT_FILTERED_CHUNKS = 20_000


async def _selective(conn: Any, tenant_id: uuid.UUID, where: str, params: dict[str, Any]) -> bool:
    """True when the filter passes few enough chunks to scan them exactly (expression
    indexes of migration 0007 keep the count cheap; LIMIT bounds it)."""
    passing = (
        await conn.execute(
            text(
                f"SELECT count(*) FROM (SELECT 1 FROM chunks c WHERE c.tenant_id = :t {where} "
                "LIMIT :cap) s"
            ),
            {**params, "t": tenant_id, "cap": EXACT_FILTERED_CHUNKS + 1},
        )
    ).scalar_one()
    return bool(passing <= EXACT_FILTERED_CHUNKS)


_TS_RANK_CD = """
WITH query AS (
    SELECT CAST(string_agg(quote_literal(lexeme), ' | ') AS tsquery) AS q
    FROM (SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', :q))) terms
)
SELECT c.id, ts_rank_cd(c.tsv, query.q, 1) AS score FROM chunks c, query
WHERE c.tenant_id = :t {where} AND c.tsv @@ query.q {ids}
ORDER BY score DESC, c.id LIMIT :k
"""


async def keyword_search(
    engine: AsyncEngine,
    *,
    tenant_id: uuid.UUID,
    query: str,
    filters: RagFilters,
    k: int = 50,
    scoring: KeywordScoring = "bm25",
    chunk_ids: Sequence[int] | None = None,
) -> list[Hit]:
    """The tenant's `k` best chunks for the words of `query`, best first.

    Args:
        engine: the database.
        tenant_id: only this tenant's chunks are searched.
        query: free text; its english lexemes are OR-ed.
        filters: metadata filters (they also bound the BM25 statistics).
        k: chunks to return.
        scoring: "bm25" or "ts_rank_cd".
        chunk_ids: score only these chunks (reranking); IDF still comes from the whole scope.

    Returns:
        Hits with `score` = `keyword` = the BM25 (or ts_rank_cd) score.
    """
    where, params = filter_sql(filters)
    if scoring == "bm25":
        async with engine.connect() as plain:
            # One snapshot for statistics and lists (the cache checks the version it read).
            conn = await plain.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                stats = await bm25.load_stats(conn, tenant_id, query)
                if stats is None:
                    return []
                if chunk_ids is not None:
                    best = await bm25.score_chunks(
                        conn, stats, chunk_ids, k=k, where=where, params=params
                    )
                elif where:
                    among = await bm25_lists.passing_chunks(conn, tenant_id, where, params)
                    if among is None:
                        found = await bm25.top_k(conn, stats, k=k, where=where, params=params)
                        best = found.best()
                    else:
                        best = await bm25_lists.exact_top_k(conn, stats, k=k, among=among)
                else:
                    best = await bm25_lists.exact_top_k(conn, stats, k=k)
        return [Hit(chunk_id=c, score=s, keyword=s) for c, s in best]
    ids = ""
    if chunk_ids is not None:
        ids = "AND c.id = ANY(:ids)"
        params["ids"] = list(chunk_ids)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(_TS_RANK_CD.format(where=where, ids=ids)),
                {**params, "q": query, "t": tenant_id, "k": k},
            )
        ).all()
    return [Hit(chunk_id=int(r[0]), score=float(r[1]), keyword=float(r[1])) for r in rows]


async def window_scores(
    engine: AsyncEngine, *, tenant_id: uuid.UUID, vector: NDArray[np.float32], chunk_ids: list[int]
) -> dict[int, float]:
    """Exact best-window cosine of each chunk in `chunk_ids` (no index, no approximation)."""
    if not chunk_ids:
        return {}
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT chunk_id, max(1 - (embedding <=> CAST(:v AS vector))) "
                    "FROM chunk_windows WHERE tenant_id = :t AND chunk_id = ANY(:ids) "
                    "GROUP BY chunk_id"
                ),
                {"v": pg_vector(vector), "t": tenant_id, "ids": chunk_ids},
            )
        ).all()
    return {int(r[0]): float(r[1]) for r in rows}


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
