"""RagQueryWorkflow: the 6-stage RAG pipeline as one durable run.

    input safety -> whole-answer cache (exact, then semantic) ->
    1 query processing (normalise, filters; optional expansion) + embed (gpu)
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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities.gateway import GatewayActivities
    from activities.rag.activities import RagActivities, RagModelActivities
    from activities.safety_checks import SafetyActivities
    from activities.semantic_cache import SemanticCacheActivities
    from keel.contracts.gateway import (
        CacheHit,
        CacheProbe,
        CacheWrite,
        GatewayConfig,
        ModelCall,
        ModelCallResult,
        VectorProbe,
        VectorWrite,
    )
    from keel.contracts.guards import BudgetState
    from keel.contracts.llm import ChatMessage, Usage
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
        RULES,
        UNGROUNDED_RULES,
        citations,
        is_not_enough_information,
        system_prompt,
        user_message,
    )
    from workflows.common import LOCAL_ACTIVITY_FAILURES, publish_status
    from workflows.llm import call_model
    from workflows.policies import LOCAL_TIMEOUT, QUICK_RETRY, RERANK_RETRY

M = TypeVar("M", bound=BaseModel)
A = TypeVar("A")

REFUSED = "I can't help with that request."
SEARCH_DOWN = (
    "I can't search the documents right now, so I can't give an answer grounded in them. "
    "Please try again shortly."
)


def _ms(delta: timedelta) -> float:
    return round(delta.total_seconds() * 1000, 3)


@workflow.defn
class RagQueryWorkflow:
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
            hits = await workflow.execute_activity_method(
                RagActivities.vector_search,
                VectorSearchInput(
                    tenant_id=request.context.tenant_id,
                    vector_b64=vector_b64,
                    filters=processed.filters,
                    k=rag.vector_k,
                    ef_search=rag.ef_search,
                    iterative_scan=rag.iterative_scan,
                ),
                task_queue=queue,
                **options,
            )
            self._timings["vector_search"] = hits.elapsed_ms
            return vector_b64, hits

        async def by_keyword() -> SearchHits:
            hits: SearchHits = await workflow.execute_activity_method(
                RagActivities.keyword_search,
                KeywordSearchInput(
                    tenant_id=request.context.tenant_id,
                    text=keyword_text,
                    filters=processed.filters,
                    k=rag.keyword_k,
                    scoring=rag.keyword_scoring,
                ),
                task_queue=queue,
                **options,
            )
            self._timings["keyword_search"] = hits.elapsed_ms
            return hits

        semantic, lexical = await asyncio.gather(by_vector(), by_keyword(), return_exceptions=True)
        vector_b64, vector_hits, keyword_hits = "", None, None
        if isinstance(semantic, ActivityError):
            self._notes.append(f"vector search failed ({_cause(semantic)}): keyword results only")
        elif isinstance(semantic, BaseException):
            raise semantic
        else:
            vector_b64, vector_hits = semantic[0], semantic[1].hits
        if isinstance(lexical, ActivityError):
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

    async def _generate(
        self,
        request: RagQueryRequest,
        question: str,
        assembled: AssembledContext,
        base: RagAnswer,
    ) -> RagAnswer:
        rag = request.rag
        self._stage = "generation"
        before = workflow.now()
        call = ModelCall(
            system=system_prompt(assembled.block),
            messages=[ChatMessage(role="user", content=user_message(question))],
            model=rag.answer_model,
            tier=rag.answer_tier,
            max_tokens=rag.answer_max_tokens,
            context_tokens=assembled.tokens,
            cited_document_ids=sorted({s.document_id for s in assembled.sources}),
        )
        # With the answer-level semantic cache on, the gateway's own semantic layer would only
        # repeat that lookup after retrieval, at two gpu round trips per miss: keep its exact
        # layer (one Redis GET) and skip the semantic one for this call.
        gateway = request.gateway
        if rag.answer_cache and rag.semantic_answer_cache:
            gateway = gateway.model_copy(update={"semantic_cache": False})
        result = await self._call(call, request, gateway)
        self._timings["generation"] = _ms(workflow.now() - before)
        if not result.ok:
            return base.model_copy(
                update={
                    "answer": f"No answer: {result.detail or result.stop_reason}",
                    "status": "failed",
                    "grounded": False,
                    "usage": self._usage,  # what earlier calls of the run spent
                    "cost_usd": self._budget.spent_usd,
                }
            )
        usage, cost, text = result.usage, result.cost_usd, result.text
        if self._carry_budget:  # the run's total: expansion's calls included
            usage, cost = self._usage, self._budget.spent_usd

        self._stage = "output_safety"
        check = TextCheck(
            tenant=request.context.tenant,
            tenant_id=request.context.tenant_id,
            text=text,
            user_input=request.question,
            context=assembled.block,
            system=RULES,
        )
        verdict = await self._local(SafetyActivities.check_output, check)
        verdicts = [verdict]
        if verdict.remedy == "regenerate":
            # One more try with the cache bypassed (the cached answer is the ungrounded one).
            retry = await self._call(call.model_copy(update={"cache": False}), request, gateway)
            if retry.ok:
                usage = self._usage if self._carry_budget else _add(usage, retry.usage)
                cost = self._budget.spent_usd if self._carry_budget else cost + retry.cost_usd
                text = retry.text
                verdict = await self._local(
                    SafetyActivities.check_output, check.model_copy(update={"text": text})
                )
                verdicts.append(verdict)
        status = "answered"
        grounded = True
        if verdict.remedy is not None and verdict.blocked:
            text, status = NOT_ENOUGH_INFORMATION, "not_enough_information"
        elif verdict.blocked:
            text, status, grounded = REFUSED, "blocked", False
        elif verdict.action == "redact" and verdict.redacted_text is not None:
            text = verdict.redacted_text
        if status == "answered" and is_not_enough_information(text):
            status = "not_enough_information"
        return base.model_copy(
            update={
                "answer": text,
                "status": status,
                "grounded": grounded,
                "citations": citations(text, assembled.sources) if status == "answered" else [],
                "model": result.model,
                "provider": result.provider,
                "cache_layer": result.cache_layer,
                "usage": usage,
                "cost_usd": cost,
                "safety": verdicts,
            }
        )

    # -- fallbacks and options -----------------------------------------------------------------

    async def _without_retrieval(
        self,
        request: RagQueryRequest,
        question: str,
        tenant: TenantState,
        processed: ProcessedQuery,
    ) -> RagAnswer:
        """Both search paths failed: answer from the model alone only if the tenant allows."""
        base = RagAnswer(
            answer=SEARCH_DOWN,
            status="failed",
            grounded=False,
            degraded=True,
            notes=list(self._notes),
            filters=processed.filters,
        )
        if not tenant.allow_ungrounded:
            return base
        self._stage = "generation"
        before = workflow.now()
        result = await self._call(
            ModelCall(
                system=UNGROUNDED_RULES,
                messages=[ChatMessage(role="user", content=question)],
                model=request.rag.answer_model,
                tier=request.rag.answer_tier,
                max_tokens=request.rag.answer_max_tokens,
                cache=False,
            ),
            request,
            request.gateway,
        )
        self._timings["generation"] = _ms(workflow.now() - before)
        if not result.ok:
            return base
        return base.model_copy(
            update={
                "answer": result.text,
                "status": "answered",
                "notes": [*self._notes, "answered from the model alone: not grounded"],
                "model": result.model,
                "provider": result.provider,
                "usage": self._usage if self._carry_budget else result.usage,
                "cost_usd": self._budget.spent_usd if self._carry_budget else result.cost_usd,
            }
        )

    async def _call(
        self, call: ModelCall, request: RagQueryRequest, gateway: GatewayConfig
    ) -> ModelCallResult:
        """One model call of this run, against what the run has spent so far."""
        budget = self._budget if self._carry_budget else BudgetState()
        result, after = await call_model(call, request.context, gateway, budget)
        if self._carry_budget:
            self._budget = after
            self._usage = _add(self._usage, result.usage)
        return result

    async def _expand(self, request: RagQueryRequest, text: str) -> list[str]:
        """Extra search terms from the cheap tier; a failure only skips the expansion."""
        result = await self._call(
            ModelCall(
                system="Rewrite the question as up to three short search queries, one per "
                "line, using other words for its key terms. Output only the queries.",
                messages=[ChatMessage(role="user", content=text)],
                tier="cheap",
                max_tokens=64,
            ),
            request,
            request.gateway,
        )
        if not result.ok:
            return []
        return [line.strip(" -*0123456789.") for line in result.text.splitlines() if line.strip()][
            :3
        ]

    # -- the whole-answer cache ---------------------------------------------------------------

    async def _cached_answer(self, request: RagQueryRequest, probe: CacheProbe) -> RagAnswer | None:
        rag = request.rag
        if not rag.answer_cache:
            return None
        layer = "answer_exact"
        try:
            hit = await self._local_optional(GatewayActivities.exact_cache_lookup, probe)
        except LOCAL_ACTIVITY_FAILURES as exc:  # Redis down: answer without the cache, say so
            kind = getattr(exc.cause, "type", None) or getattr(exc, "type", None) or "error"
            self._notes.append(f"answer cache unavailable ({kind}): answered uncached")
            return None
        if hit is None and rag.semantic_answer_cache and not self._one_embedding:
            layer = "answer_semantic"
            hit = await workflow.execute_activity_method(
                SemanticCacheActivities.semantic_cache_lookup,
                probe,
                task_queue=request.gateway.gpu_queue,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=QUICK_RETRY,
            )
        return _from_cache(hit, layer)

    async def _semantic_answer(self, probe: CacheProbe) -> RagAnswer | None:
        """The semantic answer cache, probed with the question's vector from `_embed`."""
        if not self._question_vector:
            return None
        self._stage = "answer_cache"
        try:
            hit = await self._local_optional(
                RagActivities.semantic_answer_lookup,
                VectorProbe(probe=probe, vector_b64=self._question_vector),
            )
        except LOCAL_ACTIVITY_FAILURES as exc:
            self._notes.append(f"semantic answer cache unavailable ({_cause(exc)}): uncached")
            return None
        return _from_cache(hit, "answer_semantic")

    async def _store_answer(
        self, request: RagQueryRequest, probe: CacheProbe, answer: RagAnswer
    ) -> None:
        write = CacheWrite(
            context=request.context,
            key=probe.key,
            model_scope=ANSWER_SCOPE,
            system=probe.system,
            query_text=probe.query_text,
            text=answer.model_dump_json(exclude={"timings_ms", "safety"}),
            model=answer.model or "none",
            ttl_seconds=request.rag.answer_cache_ttl_seconds,
            cited_document_ids=sorted({c.document_id for c in answer.citations}),
            semantic=request.rag.semantic_answer_cache,
        )
        try:
            await workflow.execute_local_activity_method(
                GatewayActivities.exact_cache_store,
                write,
                start_to_close_timeout=LOCAL_TIMEOUT,
                retry_policy=QUICK_RETRY,
            )
        except LOCAL_ACTIVITY_FAILURES:
            return  # Redis down: already noted at the lookup; the answer stands
        if request.rag.semantic_answer_cache and self._one_embedding:
            if self._question_vector:
                with contextlib.suppress(*LOCAL_ACTIVITY_FAILURES):  # the answer stands
                    await self._local_optional(
                        RagActivities.semantic_answer_store,
                        VectorWrite(write=write, vector_b64=self._question_vector),
                    )
        elif request.rag.semantic_answer_cache:
            await workflow.execute_activity_method(
                SemanticCacheActivities.semantic_cache_store,
                write,
                task_queue=request.gateway.gpu_queue,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=QUICK_RETRY,
            )

    # -- helpers -------------------------------------------------------------------------------

    async def _local(self, method: Callable[[Any, A], Awaitable[M | None]], arg: A) -> M:
        result = await self._local_optional(method, arg)
        if result is None:
            raise RuntimeError(f"local activity {method.__name__} returned nothing")
        return result

    async def _local_optional(
        self, method: Callable[[Any, A], Awaitable[M | None]], arg: A
    ) -> M | None:
        result: M | None = await workflow.execute_local_activity_method(
            method,
            arg,
            start_to_close_timeout=LOCAL_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
        return result

    def _finish(self, answer: RagAnswer, started: datetime) -> RagAnswer:
        timings = {**answer.timings_ms, **self._timings, "total": _ms(workflow.now() - started)}
        self._stage = "done"
        publish_status(answer.status, cost_usd=answer.cost_usd)
        return answer.model_copy(update={"timings_ms": timings})


def _from_cache(hit: CacheHit | None, layer: str) -> RagAnswer | None:
    if hit is None:
        return None
    cached = RagAnswer.model_validate_json(hit.text)
    return cached.model_copy(
        update={"cache_layer": layer, "usage": Usage(), "cost_usd": 0.0, "timings_ms": {}}
    )


def _cause(exc: FailureError) -> str:
    cause: BaseException = exc.cause or exc
    kind = getattr(cause, "type", None) if isinstance(cause, ApplicationError) else None
    return f"{kind or type(cause).__name__}: {cause}"[:200]


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


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cached_input_tokens=a.cached_input_tokens + b.cached_input_tokens,
        cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
    )
