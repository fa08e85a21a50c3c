"""Stages 2-5 on a real PostgreSQL + pgvector: vector and keyword search, filters, tenant
isolation, iterative HNSW scans, reranking, context assembly."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from activities.rag import search
from activities.rag.context import assemble_context
from activities.rag.rerank import rescore
from activities.rag.search import keyword_search, vector_search
from activities.store import ChunkRecord, upsert_document
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.rag import Hit, RagFilters
from tests.support.rag_corpus import SECRET, seed
from worker import shared_embedder


@pytest.fixture
async def corpus(clients: Clients, tenant: str) -> tuple[uuid.UUID, dict[str, int]]:
    tenant_id = await ensure_tenant(clients.engine, tenant)
    return tenant_id, await seed(clients.engine, tenant_id)


def _embed(question: str) -> Any:
    return shared_embedder("onnx").embed([question])[0]


async def test_vector_and_keyword_search_find_the_passage_that_answers(
    clients: Clients, corpus: tuple[uuid.UUID, dict[str, int]]
) -> None:
    tenant_id, ids = corpus
    question = "How many vacation days do new employees get?"
    by_vector = await vector_search(
        clients.engine, tenant_id=tenant_id, vector=_embed(question), filters=RagFilters(), k=3
    )
    by_keyword = await keyword_search(
        clients.engine, tenant_id=tenant_id, query=question, filters=RagFilters(), k=3
    )
    assert by_vector[0].chunk_id == ids["hr-leave-1"]
    assert by_keyword[0].chunk_id == ids["hr-leave-1"]
    assert len(by_vector) == 3
    assert by_vector[0].score >= by_vector[1].score >= by_vector[2].score
    assert 0.0 < by_vector[0].score <= 1.0

    # BM25: a rare term outweighs common ones; OR semantics: not every word must match.
    rare = await keyword_search(
        clients.engine,
        tenant_id=tenant_id,
        query="which employees use WireGuard",
        filters=RagFilters(),
    )
    assert rare[0].chunk_id == ids["it-vpn-1"]
    assert len(rare) > 1  # "employees" alone matches others, ranked below
    cover = await keyword_search(
        clients.engine,
        tenant_id=tenant_id,
        query=question,
        filters=RagFilters(),
        scoring="ts_rank_cd",
    )
    assert cover[0].chunk_id == ids["hr-leave-1"]
    stopwords_only = await keyword_search(
        clients.engine, tenant_id=tenant_id, query="what is the", filters=RagFilters()
    )
    assert stopwords_only == []


async def test_metadata_filters_apply_in_both_searches(
    clients: Clients, corpus: tuple[uuid.UUID, dict[str, int]]
) -> None:
    tenant_id, ids = corpus
    question = "hotel reimbursement per night on business travel"
    vector = _embed(question)
    in_2022 = RagFilters(date_from="2022-01-01", date_to="2022-12-31")
    for hits in (
        await vector_search(clients.engine, tenant_id=tenant_id, vector=vector, filters=in_2022),
        await keyword_search(clients.engine, tenant_id=tenant_id, query=question, filters=in_2022),
    ):
        assert [h.chunk_id for h in hits] == [ids["fin-travel-2022-1"]]

    it_only = RagFilters(departments=["it"])  # case-blind
    hits = await vector_search(clients.engine, tenant_id=tenant_id, vector=vector, filters=it_only)
    assert {h.chunk_id for h in hits} == {ids["it-vpn-1"], ids["it-passwords-1"]}

    faqs = RagFilters(doc_types=["FAQ"], departments=["Finance"])
    hits = await keyword_search(
        clients.engine, tenant_id=tenant_id, query="expense reports receipts", filters=faqs
    )
    assert [h.chunk_id for h in hits] == [ids["fin-expenses-1"]]


async def test_tenant_b_never_retrieves_tenant_a_chunks(
    clients: Clients, corpus: tuple[uuid.UUID, dict[str, int]]
) -> None:
    tenant_b, ids_b = corpus
    tenant_a = await ensure_tenant(clients.engine, f"t-{uuid.uuid4().hex[:12]}")
    ids_a = await seed(clients.engine, tenant_a, [SECRET])
    question = "What is the launch code word of Project Falcon?"

    vector = _embed(question)
    for tenant_id, own in ((tenant_b, set(ids_b.values())), (tenant_a, set(ids_a.values()))):
        found = await vector_search(
            clients.engine, tenant_id=tenant_id, vector=vector, filters=RagFilters(), k=50
        )
        found += await keyword_search(
            clients.engine, tenant_id=tenant_id, query=question, filters=RagFilters(), k=50
        )
        assert {h.chunk_id for h in found} <= own
    # Even given tenant A's chunk ids, tenant B's context assembly and reranking read nothing.
    stolen = [Hit(chunk_id=ids_a["falcon-1"], score=1.0)]
    assembled = await assemble_context(
        clients.engine, tenant_id=tenant_b, hits=stolen, token_budget=500
    )
    assert assembled.sources == [] and "HERON" not in assembled.block
    reranked = await rescore(
        clients.engine, tenant_id=tenant_b, question=question, vector=vector, hits=stolen
    )
    assert reranked == []


async def test_selective_filters_are_searched_exactly_and_return_the_right_rows(
    clients: Clients, corpus: tuple[uuid.UUID, dict[str, int]]
) -> None:
    """2,000 near-duplicates of the query crowd the HNSW neighbourhood and fail the date
    filter; the two chunks that pass lie farther away. A walk of the graph from the query
    gives up among the near-duplicates (at 100k chunks, one department of eight got recall@10
    0.29 that way); a filter this selective is counted first and searched exactly."""
    tenant_id, ids = corpus
    query = _embed("How do I connect to the VPN from home?")
    rng = np.random.default_rng(7)
    noise = query + rng.normal(0, 0.01, size=(2000, query.shape[0])).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    await upsert_document(
        clients.engine,
        tenant_id=tenant_id,
        source="noise",
        title="noise",
        metadata={},
        content_hash="noise",
        chunks=[
            ChunkRecord(
                position=i,
                text=f"noise {i}",
                token_count=2,
                embedding=v,
                windows=[v],
                metadata={"date": "2020-01-01"},
            )
            for i, v in enumerate(noise)
        ],
    )
    recent = RagFilters(date_from="2023-10-01")
    async with clients.engine.begin() as conn:
        await conn.execute(text("ANALYZE chunk_windows"))
        await conn.execute(text("ANALYZE chunks"))
    for scan in ("off", "relaxed_order"):
        found = await vector_search(
            clients.engine,
            tenant_id=tenant_id,
            vector=query,
            filters=recent,
            k=2,
            ef_search=8,
            iterative_scan=scan,
        )
        assert [h.chunk_id for h in found] == [ids["it-vpn-1"], ids["it-passwords-1"]]
    async with clients.engine.connect() as conn:  # the count that chose the exact scan
        where, params = search.filter_sql(recent)
        assert await search._selective(conn, tenant_id, where, params)


async def test_rescore_fills_missing_components_and_reorders(
    clients: Clients, corpus: tuple[uuid.UUID, dict[str, int]]
) -> None:
    tenant_id, ids = corpus
    question = "How long is parental leave?"
    candidates = [
        Hit(chunk_id=ids["ops-oncall-1"], score=0.9, keyword=3.0),  # keyword-only candidate
        Hit(chunk_id=ids["hr-leave-2"], score=0.5, vector=0.5),  # vector-only candidate
        Hit(chunk_id=ids["hr-leave-1"], score=0.4, vector=0.4),
    ]
    ranked = await rescore(
        clients.engine,
        tenant_id=tenant_id,
        question=question,
        vector=_embed(question),
        hits=candidates,
    )
    assert ranked[0].chunk_id == ids["hr-leave-2"]
    assert {h.chunk_id for h in ranked} == {h.chunk_id for h in candidates}
    assert all(h.vector is not None for h in ranked)
    assert ranked[0].keyword is not None and ranked[0].keyword > 0
