"""The whole-answer cache of `RagQueryWorkflow`: exact (Redis) and semantic (pgvector)
lookups before the pipeline, and the write after an answer worth keeping."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.gateway import GatewayActivities
    from activities.rag.activities import RagActivities
    from activities.semantic_cache import SemanticCacheActivities
    from keel.contracts.gateway import (
        CacheProbe,
        CacheWrite,
        VectorProbe,
        VectorWrite,
    )
    from keel.contracts.rag import (
        RagAnswer,
        RagQueryRequest,
    )
    from keel.guards.answer_key import ANSWER_SCOPE
    from workflows.common import LOCAL_ACTIVITY_FAILURES
    from workflows.policies import LOCAL_TIMEOUT, QUICK_RETRY
    from workflows.rag_base import RagRunBase, _cause, _from_cache


class AnswerCacheMixin(RagRunBase):
    """Lookups and writes of the answer cache."""

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
