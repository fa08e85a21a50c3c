"""RagQueryWorkflow: the 6-stage RAG pipeline as one durable run.

    input safety -> exact answer cache ->
    1 query processing (normalise, filters) + one embedding call (gpu: the search text and
      the question) -> semantic answer cache (local, with that vector) -> optional expansion
    2 vector search (cpu)  ||  3 keyword search (cpu) -> fusion
    4 rerank (gpu) -> 5 context assembly -> 6 grounded generation (gateway)
    -> output safety + grounding -> answer-cache write

Which stages are local activities, and why: the pure or millisecond-short steps (safety checks,
tenant state, query processing, fusion, context assembly, cache lookups/writes) run as local
activities in the workflow's own worker, a few ms each instead of a scheduled round trip, still
recorded (as markers) in history. Embedding and reranking need a model and run on the gpu
queue; vector and keyword search run as regular activities on the cpu (or a dedicated
retrieval) queue, so their retries are visible and a search outage is decided on in workflow
code. Stages pass chunk ids and scores (50 candidates are ~5 KB); chunk text enters history
only as the context block, bounded by `context_token_budget`: as the assembly's result and as
the gateway's provider-call input that sends it (the gateway takes the prompt itself).

Fallbacks, decided here so they replay identically: a reranker that still fails after its
retries leaves the hybrid order in place and marks the answer `degraded`; a search path that
fails leaves the other one; when both fail the tenant's `allow_ungrounded` setting decides
between an answer from the model alone (marked ungrounded) and a plain failure answer.

The class is built in layers, one module each: `workflows.rag_base` (state, helpers),
`workflows.rag_cache` (the answer cache), `workflows.rag_generation` (stage 6, expansion, the
ungrounded fallback) and this module (the run and stages 1-5).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.rag.activities import RagActivities, RagModelActivities
    from activities.safety_checks import SafetyActivities
    from keel.contracts.gateway import (
        CacheProbe,
    )
    from keel.contracts.guards import BudgetState
    from keel.contracts.llm import Usage
    from keel.contracts.rag import (
        AssembledContext,
        AssembleInput,
        EmbedQueryInput,
        FuseInput,
        Hit,
        KeywordSearchInput,
        ProcessedQuery,
        ProcessQueryInput,
        RagAnswer,
        RagQueryRequest,
        RerankInput,
        SearchHits,
        TenantState,
        TextCheck,
        VectorSearchInput,
    )
    from keel.guards.answer_key import ANSWER_SCOPE, answer_key, answer_scope
    from keel.guards.cache_key import normalise
    from keel.rag.prompt import (
        NOT_ENOUGH_INFORMATION,
    )
    from workflows.common import LOCAL_ACTIVITY_FAILURES, publish_status
    from workflows.policies import QUICK_RETRY, RERANK_RETRY
    from workflows.rag_base import _cause, _ms
    from workflows.rag_generation import REFUSED, GenerationMixin


T = TypeVar("T")


@workflow.defn
class RagQueryWorkflow(GenerationMixin):
    """Answer one question from the tenant's documents, citing them."""

    def __init__(self) -> None:
        self._stage = "starting"
        self._timings: dict[str, float] = {}
        self._notes: list[str] = []
        # What this run's model calls have spent, all of them (expansion, answer, retry):
        # the run's budget caps the run, not each call, and its answer reports the total.
        self._budget = BudgetState()
        self._usage = Usage()
        self._carry_budget = False
        self._one_embedding = False
        self._question_vector = ""

    @workflow.query
    def progress(self) -> dict[str, Any]:
        """The stage running now and the stages' times so far (shown by `GET /v1/runs/{id}`)."""
        return {"stage": self._stage, "timings_ms": dict(self._timings), "notes": self._notes}

    @workflow.run
    async def run(self, request: RagQueryRequest) -> RagAnswer:
        started = workflow.now()
        context = request.context
        rag = request.rag
        # Runs recorded before the budget was carried across calls replay as they ran.
        self._carry_budget = workflow.patched("rag-run-budget")
        # Runs recorded before the query's one embedding call also served the semantic answer
        # cache (two gpu round trips fewer per miss) replay as they ran.
        self._one_embedding = workflow.patched("rag-one-embedding")
        # Runs recorded before vector and keyword search became local activities (on the
        # workflow's own queue) replay as they ran.
        self._local_search = workflow.patched("rag-local-search")

        self._stage = "input_safety"
        verdict = await self._local(
            SafetyActivities.check_input,
            TextCheck(tenant=context.tenant, tenant_id=context.tenant_id, text=request.question),
        )
        if verdict.blocked:
            return self._finish(
                RagAnswer(answer=REFUSED, status="blocked", grounded=False, safety=[verdict]),
                started,
            )
        question = verdict.redacted_text or request.question

        self._stage = "answer_cache"
        tenant = await self._local(RagActivities.tenant_state, context.tenant_id)
        scope = answer_scope(context.tenant_id, request.filters, rag, tenant.corpus_generation)
        probe = CacheProbe(
            context=context,
            key=answer_key(scope, question),
            model_scope=ANSWER_SCOPE,
            system=scope,
            query_text=normalise(question),
            threshold=request.gateway.semantic_threshold,
            workflow_id=workflow.info().workflow_id,
            run_id=workflow.info().run_id,
        )
        cached = await self._cached_answer(request, probe)
        if cached is not None:
            return self._finish(cached.model_copy(update={"safety": [verdict]}), started)

        answer = await self._pipeline(request, question, tenant, probe)
        answer = answer.model_copy(update={"safety": [verdict, *answer.safety]})
        if answer.cache_layer == "answer_semantic":
            return self._finish(answer, started)
        if (
            rag.answer_cache
            and not answer.degraded
            and answer.status in ("answered", "not_enough_information")
        ):
            self._stage = "cache_write"
            await self._store_answer(request, probe, answer)
        return self._finish(answer, started)

    # -- the six stages ----------------------------------------------------------------------

    async def _pipeline(
        self, request: RagQueryRequest, question: str, tenant: TenantState, probe: CacheProbe
    ) -> RagAnswer:
        rag = request.rag
        tenant_id = request.context.tenant_id

        self._stage = "query_processing"
        processed = await self._local(
            RagActivities.process_query,
            ProcessQueryInput(
                question=question,
                filters=request.filters,
                departments=tenant.departments,
                doc_types=tenant.doc_types,
                today=workflow.now().date(),
            ),
        )
        embedded: str | BaseException | None = None
        if self._one_embedding:
            embedded = await self._embed(request, processed.search_text, probe)
            cached = await self._semantic_answer(probe)
            if cached is not None:
                return cached
        keyword_text = processed.search_text
        if rag.expand_query:
            expansions = await self._expand(request, processed.search_text)
            processed = processed.model_copy(update={"expansions": expansions})
            keyword_text = " ".join([processed.search_text, *expansions])

        self._stage = "retrieval"
        vector, vector_hits, keyword_hits = await self._retrieve(
            request, processed, keyword_text, embedded
        )
        if vector_hits is None and keyword_hits is None:
            return await self._without_retrieval(request, question, tenant, processed)

        fused = await self._local(
            RagActivities.fuse,
            FuseInput(
                vector=vector_hits or [],
                keyword=keyword_hits or [],
                fusion=rag.fusion,
                vector_weight=rag.vector_weight,
                keyword_weight=rag.keyword_weight,
                rrf_k=rag.rrf_k,
                k=max(rag.vector_k, rag.keyword_k),
            ),
        )
        self._timings["fusion"] = fused.elapsed_ms

        self._stage = "rerank"
        top, reranker = await self._rerank(request, question, vector, fused.hits)

        self._stage = "context"
        assembled = await self._local(
            RagActivities.assemble_context,
            AssembleInput(tenant_id=tenant_id, hits=top, token_budget=rag.context_token_budget),
        )
        self._timings["context"] = assembled.elapsed_ms
        base = RagAnswer(
            answer=NOT_ENOUGH_INFORMATION,
            status="not_enough_information",
            degraded=bool(self._notes),
            notes=list(self._notes) + _screening_notes(assembled),
            sources=assembled.sources,
            filters=processed.filters,
            reranker=reranker,
        )
        if not assembled.sources:
            # Nothing matched at all: no model can answer from nothing, so do not pay one.
            return base
        return await self._generate(request, question, assembled, base)

    async def _embed(
        self, request: RagQueryRequest, search_text: str, probe: CacheProbe
    ) -> str | BaseException:
        """The query's one embedding call: the search text's vector (returned) and, when the
        semantic answer cache is on, the question's (kept for its lookup and its write). A
        failure is returned, not raised: keyword search can still answer."""
        rag = request.rag
        semantic = rag.answer_cache and rag.semantic_answer_cache and bool(probe.query_text)
        budget = timedelta(seconds=rag.retrieval_timeout_seconds)
        before = workflow.now()
        try:
            vector = await workflow.execute_activity_method(
                RagModelActivities.embed_query,
                EmbedQueryInput(
                    text=search_text, more_texts=[probe.query_text] if semantic else []
                ),
                task_queue=request.gateway.gpu_queue,
                start_to_close_timeout=budget,
                schedule_to_close_timeout=budget,
                retry_policy=QUICK_RETRY,
            )
        except ActivityError as exc:
            return exc
        self._timings["embedding"] = vector.elapsed_ms or _ms(workflow.now() - before)
        if vector.more_vectors_b64:
            self._question_vector = vector.more_vectors_b64[0]
        return vector.vector_b64

    async def _retrieve(
        self,
        request: RagQueryRequest,
        processed: ProcessedQuery,
        keyword_text: str,
        embedded: str | BaseException | None = None,
    ) -> tuple[str, list[Hit] | None, list[Hit] | None]:
        """Vector search (embedding first unless `embedded` is the query's vector, or the
        failure that embedding it met) and keyword search, concurrently; None for a failed
        path."""
        rag = request.rag
        info = workflow.info()
        queue = rag.retrieval_queue or request.gateway.cpu_queue or info.task_queue
        budget = timedelta(seconds=rag.retrieval_timeout_seconds)
        options: dict[str, Any] = {
            "start_to_close_timeout": budget,
            "schedule_to_close_timeout": budget,
            "retry_policy": QUICK_RETRY,
        }
        # A search on the workflow's own queue runs as a local activity: it takes a few ms,
        # and a regular activity's completion costs another workflow task's dispatch
        # (20-40 ms on the dev server). Its attempts and failures are still in history (as
        # markers) and decided on here. A dedicated retrieval queue keeps regular activities.
        # (Decided from the request, never from `info.task_queue`: a replayer runs the
        # history under a task queue of its own.)
        local = self._local_search and not rag.retrieval_queue

        async def search(method: Any, arg: Any) -> SearchHits:
            if local:
                found: SearchHits = await workflow.execute_local_activity_method(
                    method, arg, **options
                )
                return found
            return await workflow.execute_activity_method(method, arg, task_queue=queue, **options)

        async def by_vector() -> tuple[str, SearchHits]:
            if isinstance(embedded, BaseException):
                raise embedded
            if embedded is None:
                before = workflow.now()
                vector = await workflow.execute_activity_method(
                    RagModelActivities.embed_query,
                    EmbedQueryInput(text=processed.search_text),
                    task_queue=request.gateway.gpu_queue,
                    **options,
                )
                self._timings["embedding"] = vector.elapsed_ms or _ms(workflow.now() - before)
                vector_b64 = vector.vector_b64
            else:
                vector_b64 = embedded
            hits = await search(
                RagActivities.vector_search,
                VectorSearchInput(
                    tenant_id=request.context.tenant_id,
                    vector_b64=vector_b64,
                    filters=processed.filters,
                    k=rag.vector_k,
                    ef_search=rag.ef_search,
                    iterative_scan=rag.iterative_scan,
                ),
            )
            self._timings["vector_search"] = hits.elapsed_ms
            return vector_b64, hits

        async def by_keyword() -> SearchHits:
            hits = await search(
                RagActivities.keyword_search,
                KeywordSearchInput(
                    tenant_id=request.context.tenant_id,
                    text=keyword_text,
                    filters=processed.filters,
                    k=rag.keyword_k,
                    scoring=rag.keyword_scoring,
                ),
            )
            self._timings["keyword_search"] = hits.elapsed_ms
            return hits

        if local:
            # One after the other: local activities resolved concurrently can replay in a
            # different order than they ran (temporalio/sdk-python#1578), and both take ms.
            lexical = await _outcome(by_keyword())
            semantic = await _outcome(by_vector())
        else:
            semantic, lexical = await asyncio.gather(
                by_vector(), by_keyword(), return_exceptions=True
            )
        vector_b64, vector_hits, keyword_hits = "", None, None
        if isinstance(semantic, LOCAL_ACTIVITY_FAILURES):
            self._notes.append(f"vector search failed ({_cause(semantic)}): keyword results only")
        elif isinstance(semantic, BaseException):
            raise semantic
        else:
            vector_b64, vector_hits = semantic[0], semantic[1].hits
        if isinstance(lexical, LOCAL_ACTIVITY_FAILURES):
            self._notes.append(f"keyword search failed ({_cause(lexical)}): vector results only")
        elif isinstance(lexical, BaseException):
            raise lexical
        else:
            keyword_hits = lexical.hits
        return vector_b64, vector_hits, keyword_hits

    async def _rerank(
        self, request: RagQueryRequest, question: str, vector: str, hits: list[Hit]
    ) -> tuple[list[Hit], str]:
        rag = request.rag
        if rag.reranker == "none" or not hits:
            return hits[: rag.top_k], "none"
        try:
            result = await workflow.execute_activity_method(
                RagModelActivities.rerank,
                RerankInput(
                    tenant_id=request.context.tenant_id,
                    question=question,
                    vector_b64=vector,
                    candidates=hits[: rag.rerank_candidates],
                    top_k=rag.top_k,
                    reranker=rag.reranker,
                    model=rag.cross_encoder_model,
                    sentence_candidates=rag.rescore_sentence_candidates,
                ),
                task_queue=request.gateway.gpu_queue,
                start_to_close_timeout=timedelta(seconds=rag.rerank_timeout_seconds),
                retry_policy=RERANK_RETRY,
            )
        except ActivityError as exc:
            self._notes.append(f"reranking failed ({_cause(exc)}): hybrid order kept")
            return hits[: rag.top_k], "none"
        self._timings["rerank"] = result.elapsed_ms
        return result.hits, result.reranker

    def _finish(self, answer: RagAnswer, started: datetime) -> RagAnswer:
        timings = {**answer.timings_ms, **self._timings, "total": _ms(workflow.now() - started)}
        self._stage = "done"
        publish_status(answer.status, cost_usd=answer.cost_usd)
        return answer.model_copy(update={"timings_ms": timings})


async def _outcome(step: Awaitable[T]) -> T | BaseException:
    """The step's result, or what it raised (as `gather(..., return_exceptions=True)` does)."""
    try:
        return await step
    except Exception as exc:
        return exc


def _screening_notes(assembled: AssembledContext) -> list[str]:
    """What the injection screen did to the retrieved chunks (never a degradation)."""
    notes = []
    if assembled.neutralised:
        notes.append(
            f"instructions found in {len(assembled.neutralised)} retrieved chunk(s) were "
            "removed; the rest of their text was used"
        )
    if assembled.quarantined:
        notes.append(f"{len(assembled.quarantined)} retrieved chunk(s) withheld: instructions only")
    return notes
