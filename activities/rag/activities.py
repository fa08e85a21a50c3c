"""RAG activities: the stages of `RagQueryWorkflow` that touch Postgres or a model.

`RagActivities` (cpu queue) reads Postgres: tenant state, vector and keyword search, context
assembly; and hosts the two pure stages (query processing, fusion) that run as local
activities. `RagModelActivities` (gpu queue) holds the models: the query embedder and the
rerankers. Each method is one stage, so a failing stage retries alone and shows by name in the
Temporal UI.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.ledger import cache_hit_row, record
from activities.rag.context import assemble_context
from activities.rag.rerank import CrossEncoders, ModelUnavailable, rerank_hits
from activities.rag.search import (
    decode_vector,
    elapsed_ms,
    encode_vector,
    keyword_search,
    vector_search,
)
from activities.semantic_cache import find_semantic, store_semantic
from keel.contracts.gateway import CacheHit, VectorProbe, VectorWrite
from keel.contracts.rag import (
    AssembledContext,
    AssembleInput,
    EmbedQueryInput,
    FuseInput,
    KeywordSearchInput,
    ProcessedQuery,
    ProcessQueryInput,
    QueryVector,
    RerankInput,
    RerankResult,
    SearchHits,
    TenantState,
    VectorSearchInput,
)
from keel.corpus import GENERATION_SQL, generation_tag
from keel.embedding import Embedder
from keel.errors import ErrorType, failure
from keel.rag.fusion import fuse
from keel.rag.query import process_query
from keel.telemetry import activity_context

# Vocabulary for filter extraction: at most this many distinct values per field.
VOCABULARY_LIMIT = 200


class RagActivities:
    """Retrieval and context assembly over Postgres (cpu queue)."""

    def __init__(self, *, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name="rag_tenant_state")
    async def tenant_state(self, tenant_id: str) -> TenantState:
        """The tenant's corpus generation (for answer-cache keys), its ungrounded-answer
        setting and the departments and document types its documents carry."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        f"""
                        SELECT
                          {GENERATION_SQL},
                          (SELECT coalesce(settings->'allow_ungrounded' = 'true'::jsonb, false)
                             FROM tenants WHERE id = :t),
                          ARRAY(SELECT DISTINCT metadata->>'department' FROM documents
                                 WHERE tenant_id = :t AND metadata ? 'department' LIMIT :n),
                          ARRAY(SELECT DISTINCT metadata->>'doc_type' FROM documents
                                 WHERE tenant_id = :t AND metadata ? 'doc_type' LIMIT :n)
                        """
                    ),
                    {"t": uuid.UUID(tenant_id), "n": VOCABULARY_LIMIT},
                )
            ).one()
        return TenantState(
            corpus_generation=generation_tag(row[0]),
            allow_ungrounded=bool(row[1]),
            departments=[d for d in row[2] if d],
            doc_types=[d for d in row[3] if d],
        )

    @activity.defn(name="rag_process_query")
    async def process_query(self, request: ProcessQueryInput) -> ProcessedQuery:
        """Stage 1: normalise and read filters (pure; a local activity)."""
        return process_query(request)

    @activity.defn(name="rag_vector_search")
    async def vector_search(self, request: VectorSearchInput) -> SearchHits:
        """Stage 2: HNSW top-k over the tenant's chunk windows, filters applied in the scan."""
        started = time.perf_counter()
        with activity_context():
            hits = await vector_search(
                self.engine,
                tenant_id=uuid.UUID(request.tenant_id),
                vector=decode_vector(request.vector_b64),
                filters=request.filters,
                k=request.k,
                ef_search=request.ef_search,
                iterative_scan=request.iterative_scan,
            )
        return SearchHits(hits=hits, elapsed_ms=elapsed_ms(started))

    @activity.defn(name="rag_keyword_search")
    async def keyword_search(self, request: KeywordSearchInput) -> SearchHits:
        """Stage 3 (first half): BM25 over Postgres full text."""
        started = time.perf_counter()
        with activity_context():
            hits = await keyword_search(
                self.engine,
                tenant_id=uuid.UUID(request.tenant_id),
                query=request.text,
                filters=request.filters,
                k=request.k,
                scoring=request.scoring,
            )
        return SearchHits(hits=hits, elapsed_ms=elapsed_ms(started))

    @activity.defn(name="rag_fuse")
    async def fuse(self, request: FuseInput) -> SearchHits:
        """Stage 3 (second half): merge the two lists (pure; a local activity)."""
        started = time.perf_counter()
        return SearchHits(hits=fuse(request), elapsed_ms=elapsed_ms(started))

    @activity.defn(name="rag_semantic_answer_lookup")
    async def semantic_answer_lookup(self, request: VectorProbe) -> CacheHit | None:
        """The semantic answer cache, probed with the vector the query's embedding call already
        made (a local activity: no model, one pgvector query); a hit gets its ledger row."""
        vector = [float(x) for x in decode_vector(request.vector_b64)]
        hit = await find_semantic(self.engine, None, request.probe, vector)
        if hit is not None:
            await record(self.engine, cache_hit_row(request.probe, hit))
        return hit

    @activity.defn(name="rag_semantic_answer_store")
    async def semantic_answer_store(self, request: VectorWrite) -> None:
        """Remember an answer under its question's vector (idempotent per question)."""
        if request.write.semantic and request.write.query_text:
            vector = [float(x) for x in decode_vector(request.vector_b64)]
            await store_semantic(self.engine, request.write, vector)

    @activity.defn(name="rag_assemble_context")
    async def assemble_context(self, request: AssembleInput) -> AssembledContext:
        """Stage 5: numbered sources, read by chunk id, within the token budget."""
        started = time.perf_counter()
        assembled = await assemble_context(
            self.engine,
            tenant_id=uuid.UUID(request.tenant_id),
            hits=request.hits,
            token_budget=request.token_budget,
        )
        return assembled.model_copy(update={"elapsed_ms": elapsed_ms(started)})


class RagModelActivities:
    """The model-bound stages (gpu queue): query embedding and reranking."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        embedder: Embedder,
        cross_encoders: CrossEncoders | None = None,
    ) -> None:
        self.engine = engine
        self.embedder = embedder
        self.cross_encoders = cross_encoders or CrossEncoders()

    @activity.defn(name="rag_embed_query")
    async def embed_query(self, request: EmbedQueryInput) -> QueryVector:
        """Stage 1 (last step): the query's vector, from the same model as the chunks'."""
        started = time.perf_counter()
        texts = list(dict.fromkeys([request.text, *request.more_texts]))
        vectors = await asyncio.to_thread(self.embedder.embed, texts)
        encoded = {t: encode_vector(v) for t, v in zip(texts, vectors, strict=True)}
        return QueryVector(
            vector_b64=encoded[request.text],
            model=self.embedder.name,
            elapsed_ms=elapsed_ms(started),
            more_vectors_b64=[encoded[t] for t in request.more_texts],
        )

    @activity.defn(name="rag_rerank")
    async def rerank(self, request: RerankInput) -> RerankResult:
        """Stage 4: rerank the candidates and keep the best `top_k`.

        Raises:
            ApplicationError: `DependencyDown` (retryable: another gpu worker may have the
                model) when the cross-encoder cannot be loaded here.
        """
        started = time.perf_counter()
        tenant_id = uuid.UUID(request.tenant_id)
        with activity_context():
            try:
                ranked = await rerank_hits(
                    self.engine,
                    tenant_id=tenant_id,
                    question=request.question,
                    vector=decode_vector(request.vector_b64) if request.vector_b64 else None,
                    hits=request.candidates,
                    reranker=request.reranker,
                    model=request.model,
                    embedder=self.embedder,
                    cross_encoders=self.cross_encoders,
                    sentence_candidates=request.sentence_candidates,
                )
            except ModelUnavailable as exc:
                raise failure(ErrorType.DEPENDENCY_DOWN, str(exc)) from exc
        return RerankResult(
            hits=ranked[: request.top_k],
            reranker=request.reranker,
            elapsed_ms=elapsed_ms(started),
        )
