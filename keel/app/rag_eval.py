"""`keel eval`: retrieval and answer quality of the RAG pipeline on the labelled evaluation set.

The corpus (`evals/corpus/*.jsonl`, loaded by `keel.evaluation`) is seeded into an evaluation
tenant: one chunk per labelled passage, one document per `doc_id`, stored with
`activities.store.upsert_document` (unchanged documents are skipped, embeddings are cached on
disk). Every question then runs through the pipeline's own stage functions, in process, the
code the activities call: stage 1 (normalise, read filters from the question, embed), stage 2
vector search, stage 3 keyword search and fusion, stage 4 reranking, stage 5 context assembly
and stage 6 with the offline `local-extractive` provider and the production prompt. In process
rather than one Temporal run per question, so that four retrieval modes over the same
questions take seconds: the workflow adds orchestration, not ranking.

Retrieval modes, same questions, top 50 each: vector (HNSW cosine over chunk windows, best
window per chunk), keyword (BM25 over Postgres full text), hybrid (both, min-max normalised,
0.7 / 0.3 by default), hybrid + rerank (the hybrid top 50 reordered by the configured
reranker). Filters are read from the question text only (as a user's plain question would
be); `explicit_filters` also passes each question's labelled filters as request fields.

Metrics (`keel.evaluation.metrics`): recall@5, recall@50, MRR@10, nDCG@10 over answerable
questions; for answers, citation correctness (an answerable answer cites a gold passage, an
unanswerable one cites nothing), citation precision, "not enough information" on unanswerable
questions (and, wrongly, on answerable ones), the grounding share of answers (the safety
layer's lexical check) and the golden must/must-not-contain checks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.providers.base import Provider
from activities.providers.local import LocalExtractiveProvider
from activities.rag.rerank import CrossEncoders, rerank_hits, shared_cross_encoders
from activities.rag.search import keyword_search, vector_search
from keel.app.rag_eval_answers import answer_metrics, answer_with_local_model
from keel.app.rag_eval_report import (
    MODES,
    EvalReport,
    ModeMetrics,
    mean,
)
from keel.app.rag_seed import EmbeddingCache, Passage, seed_passages
from keel.contracts.rag import FuseInput, Hit, ProcessQueryInput, RagConfig, RagFilters
from keel.embedding import Embedder
from keel.evaluation import (
    GoldenItem,
    Question,
    load_corpus,
    load_golden,
    load_questions,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)
from keel.evaluation import Passage as EvalPassage
from keel.rag.fusion import fuse
from keel.rag.query import process_query
from keel.settings import Settings


def seed_form(passage: EvalPassage) -> Passage:
    """An evaluation passage as the seeder stores it (one chunk, its metadata)."""
    return Passage(
        doc_id=passage.doc_id,
        passage_id=passage.passage_id,
        title=passage.title,
        text=passage.text,
        date=passage.date.isoformat(),
        department=passage.department,
        doc_type=passage.doc_type,
    )


@dataclass
class EvalOptions:
    tenant: str = "eval"
    limit: int | None = None
    answers: bool = True
    explicit_filters: bool = False
    corpus: Path | None = None
    questions: Path | None = None
    today: date | None = None
    rag: RagConfig | None = None


@dataclass
class _Ranked:
    by_mode: dict[str, list[int]]
    ms: dict[str, float]
    top: list[Hit] = field(default_factory=list)


async def _rank(
    engine: AsyncEngine,
    embedder: Embedder,
    tenant_id: uuid.UUID,
    question: str,
    search_text: str,
    vector: Any,
    filters: RagFilters,
    rag: RagConfig,
    cross_encoders: CrossEncoders,
) -> _Ranked:
    """Stages 2-4 for one question, every mode's ranking kept."""
    ms: dict[str, float] = {}
    started = time.perf_counter()
    by_vector = await vector_search(
        engine,
        tenant_id=tenant_id,
        vector=vector,
        filters=filters,
        k=rag.vector_k,
        ef_search=rag.ef_search,
        iterative_scan=rag.iterative_scan,
    )
    ms["vector"] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    by_keyword = await keyword_search(
        engine,
        tenant_id=tenant_id,
        query=search_text,
        filters=filters,
        k=rag.keyword_k,
        scoring=rag.keyword_scoring,
    )
    ms["keyword"] = (time.perf_counter() - started) * 1000
    fused = fuse(
        FuseInput(
            vector=by_vector,
            keyword=by_keyword,
            fusion=rag.fusion,
            vector_weight=rag.vector_weight,
            keyword_weight=rag.keyword_weight,
            rrf_k=rag.rrf_k,
            k=max(rag.vector_k, rag.keyword_k),
        )
    )
    ms["hybrid"] = ms["vector"] + ms["keyword"]
    candidates = fused[: rag.rerank_candidates]
    started = time.perf_counter()
    # The pipeline's own stage 4 (a cross-encoder that cannot load fails here, loudly).
    reranked = await rerank_hits(
        engine,
        tenant_id=tenant_id,
        question=question,
        vector=vector,
        hits=candidates,
        reranker=rag.reranker,
        model=rag.cross_encoder_model,
        embedder=embedder,
        cross_encoders=cross_encoders,
        sentence_candidates=rag.rescore_sentence_candidates,
    )
    ms["hybrid+rerank"] = ms["hybrid"] + (time.perf_counter() - started) * 1000
    return _Ranked(
        by_mode={
            "vector": [h.chunk_id for h in by_vector],
            "keyword": [h.chunk_id for h in by_keyword],
            "hybrid": [h.chunk_id for h in fused],
            "hybrid+rerank": [h.chunk_id for h in reranked],
        },
        ms=ms,
        top=reranked[: rag.top_k],
    )


async def evaluate(
    engine: AsyncEngine,
    embedder: Embedder,
    *,
    tenant_id: uuid.UUID,
    passages: list[EvalPassage],
    questions: list[Question],
    golden: list[GoldenItem] | None = None,
    rag: RagConfig | None = None,
    answers: bool = True,
    explicit_filters: bool = False,
    today: date | None = None,
    cache: EmbeddingCache | None = None,
    progress: Callable[[str], Any] | None = None,
    cross_encoders: CrossEncoders | None = None,
    provider: Provider | None = None,
) -> EvalReport:
    """Seed `passages` for the tenant and score `questions` in every retrieval mode.

    `provider` answers (default: the offline extractive one; the local model in
    `tests/bench/local_llm.py`).

    Returns:
        The report; `per_question` holds each question's top 10 per mode and its answer.
    """
    rag = rag or RagConfig()
    encoders = cross_encoders or shared_cross_encoders()
    say = progress or (lambda _: None)
    started = time.perf_counter()
    say(f"seeding {len(passages)} passages ...")
    await seed_passages(
        engine,
        embedder,
        tenant_id=tenant_id,
        passages=[seed_form(p) for p in passages],
        cache=cache,
    )
    passage_of = await _passage_ids(engine, tenant_id)
    departments, doc_types = await _vocabulary(engine, tenant_id)
    processed = [
        process_query(
            ProcessQueryInput(
                question=q.question,
                filters=(
                    RagFilters.model_validate(q.filters.as_rag_filters())
                    if explicit_filters
                    else RagFilters()
                ),
                departments=departments,
                doc_types=doc_types,
                today=today or date.today(),
            )
        )
        for q in questions
    ]
    say(f"embedding {len(questions)} questions ...")
    vectors = embedder.embed([p.search_text for p in processed])
    provider = provider or LocalExtractiveProvider()
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    latencies: dict[str, list[float]] = {m: [] for m in MODES}
    by_kind: dict[str, dict[str, list[float]]] = {}
    records: list[dict[str, Any]] = []
    for n, (question, query, vector) in enumerate(zip(questions, processed, vectors, strict=True)):
        if n and n % 50 == 0:
            say(f"  {n}/{len(questions)} questions")
        ranked = await _rank(
            engine,
            embedder,
            tenant_id,
            question.question,
            query.search_text,
            vector,
            query.filters,
            rag,
            encoders,
        )
        gold = question.gold_passage_ids
        record: dict[str, Any] = {
            "qid": question.qid,
            "kind": question.kind,
            "gold": gold,
            "filters": query.filters.model_dump(mode="json", exclude_defaults=True),
        }
        for mode in MODES:
            order = [passage_of.get(i, "") for i in ranked.by_mode[mode]]
            latencies[mode].append(ranked.ms[mode])
            record[mode] = order[:10]
            if question.answerable:
                scores = {
                    "r5": recall_at_k(order, gold, 5),
                    "r50": recall_at_k(order, gold, 50),
                    "mrr": mrr_at_k(order, gold, 10),
                    "ndcg": ndcg_at_k(order, gold, 10),
                }
                rows[mode].append(scores)
                by_kind.setdefault(question.kind, {}).setdefault(mode, []).append(scores["r5"])
        if answers:
            record.update(
                await answer_with_local_model(
                    engine, provider, tenant_id, question.question, ranked.top, rag, passage_of
                )
            )
        records.append(record)
    modes = [
        ModeMetrics(
            mode=mode,
            questions=len(rows[mode]),
            recall_at_5=mean([r["r5"] for r in rows[mode]]),
            recall_at_50=mean([r["r50"] for r in rows[mode]]),
            mrr_at_10=mean([r["mrr"] for r in rows[mode]]),
            ndcg_at_10=mean([r["ndcg"] for r in rows[mode]]),
            ms_per_query=round(mean(latencies[mode]), 1),
        )
        for mode in MODES
    ]
    return EvalReport(
        passages=len(passages),
        questions=len(questions),
        answerable=sum(q.answerable for q in questions),
        modes=modes,
        recall_at_5_by_kind={
            kind: {m: mean(values.get(m, [])) for m in MODES} for kind, values in by_kind.items()
        },
        filters_read=_filters_read(questions, processed),
        answers=answer_metrics(questions, records, golden or []) if answers else None,
        seconds=round(time.perf_counter() - started, 1),
        reranker=rag.reranker,
        per_question=records,
    )


def _filters_read(questions: list[Question], processed: list[Any]) -> str:
    """How many labelled filter fields stage 1 read from the question text (and how many
    fields it read that the label does not have)."""
    labelled = read = extra = 0
    for question, query in zip(questions, processed, strict=True):
        want = RagFilters.model_validate(question.filters.as_rag_filters())
        got: RagFilters = query.filters
        for name in ("date_from", "date_to", "departments", "doc_types"):
            wanted, found = getattr(want, name), getattr(got, name)
            if wanted:
                labelled += 1
                read += int(_same(wanted, found))
            elif found:
                extra += 1
    return f"{read}/{labelled} labelled filter fields read from the text; {extra} unlabelled"


def _same(wanted: Any, found: Any) -> bool:
    if isinstance(wanted, list):
        return {w.lower() for w in wanted} == {f.lower() for f in found or []}
    return bool(wanted == found)


async def _passage_ids(engine: AsyncEngine, tenant_id: uuid.UUID) -> dict[int, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id, metadata->>'passage_id' FROM chunks WHERE tenant_id = :t"),
            {"t": tenant_id},
        )
        return {int(r[0]): str(r[1]) for r in rows}


async def _vocabulary(engine: AsyncEngine, tenant_id: uuid.UUID) -> tuple[list[str], list[str]]:
    """What `rag_tenant_state` reads for stage 1: the tenant's departments and doc types."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT ARRAY(SELECT DISTINCT metadata->>'department' FROM documents "
                    "WHERE tenant_id = :t AND metadata ? 'department'), "
                    "ARRAY(SELECT DISTINCT metadata->>'doc_type' FROM documents "
                    "WHERE tenant_id = :t AND metadata ? 'doc_type')"
                ),
                {"t": tenant_id},
            )
        ).one()
    return list(row[0]), list(row[1])


async def run_eval(
    config: Settings, options: EvalOptions, *, progress: Callable[[str], Any] | None = None
) -> EvalReport:
    """`keel eval`: seed the corpus for `options.tenant` in the configured database, score."""
    from keel.auth import ensure_tenant
    from keel.db import make_engine
    from worker import shared_embedder

    passages = load_corpus(options.corpus)
    questions = load_questions(options.questions)[: options.limit]
    engine = make_engine(config.database_dsn, pool_size=2)
    try:
        tenant_id = await ensure_tenant(engine, options.tenant)
        return await evaluate(
            engine,
            shared_embedder(config.embedder, config.embed_lanes),
            tenant_id=tenant_id,
            passages=passages,
            questions=questions,
            golden=load_golden(),
            rag=options.rag or config.rag,
            answers=options.answers,
            explicit_filters=options.explicit_filters,
            today=options.today,
            cache=EmbeddingCache(Path(config.data_dir) / "cache" / "eval-embeddings.npz"),
            progress=progress,
        )
    finally:
        await engine.dispose()
