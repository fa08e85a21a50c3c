"""Answer-cache hits (exact, then semantic) served by the API itself, before any workflow.

A hit is one Redis GET; starting a workflow to make that GET costs 50-85 ms on the dev server
(a start, two workflow tasks, a result poll). So the route computes the very key
`RagQueryWorkflow` would (the same input check, the same corpus generation, the same scope),
and only on a hit answers here. The semantic layer embeds the question in this process (the
same model as the workers' semantic cache; loaded on first use) and runs the same lookup and
key-term guard (`activities.semantic_cache.find_semantic`). A miss, a blocked or redacted
question, or anything unusual falls through to the durable workflow, which decides for itself
as before.

What stays durable: the hit's ledger row is committed to Postgres before the answer is sent
(through `keel.quickdb`, without waiting for the WAL flush: see `activities.ledger.record`),
under a key unique to this request, and says which entry answered (cache key and the id the
entry was stored under), so `GET /v1/costs` counts it even if the process dies right after.
"""

from __future__ import annotations

import time
import uuid
from functools import lru_cache

from pydantic import ValidationError

from activities.gateway_steps import REDIS_DOWN
from activities.ledger import LedgerRow, record
from activities.semantic_cache import find_semantic
from keel.auth import Principal
from keel.clients import Clients
from keel.contracts.gateway import CacheHit, CacheProbe
from keel.contracts.llm import Usage
from keel.contracts.rag import AnswerCacheLayer, RagAnswer, RagQueryRequest
from keel.contracts.safety import SafetyPolicy, SafetyVerdict
from keel.corpus import corpus_generation
from keel.embedding import Embedder, make_embedder
from keel.guards.answer_key import ANSWER_SCOPE, answer_key, answer_scope
from keel.guards.cache_key import normalise
from keel.safety import check_input
from keel.telemetry import CACHE_LOOKUPS

POLICY = SafetyPolicy()


def hit_id() -> str:
    return f"rag-hit-{uuid.uuid4().hex}"


@lru_cache(maxsize=4096)
def _checked(question: str) -> SafetyVerdict:
    """The input check of a question (pure, so a repeated question, which is what a cache hit
    is, is checked once per process; ~1.3 ms saved)."""
    return check_input(question, POLICY)


@lru_cache(maxsize=2)
def embedder_for(kind: str) -> Embedder:
    return make_embedder(kind)


async def serve_hit(
    clients: Clients, principal: Principal, request: RagQueryRequest, *, embedder_kind: str
) -> tuple[str, RagAnswer] | None:
    """The cached answer and the id it was served under, or None to run the workflow."""
    started = time.perf_counter()
    if not request.rag.answer_cache:
        return None
    verdict = _checked(request.question)
    if verdict.blocked or verdict.redacted_text is not None:
        return None  # the workflow records the refusal or serves the redacted question
    generation = await corpus_generation(clients.quick, principal.tenant_id)
    scope = answer_scope(str(principal.tenant_id), request.filters, request.rag, generation)
    key = answer_key(scope, request.question)
    layer: AnswerCacheLayer = "answer_exact"
    try:
        stored = await clients.redis.get(key)
    except REDIS_DOWN:
        return None  # the workflow answers without the cache, and says so
    try:
        if stored is not None:
            hit = CacheHit.model_validate_json(stored)
        elif request.rag.semantic_answer_cache:
            layer = "answer_semantic"
            probe = CacheProbe(
                context=request.context,
                key=key,
                model_scope=ANSWER_SCOPE,
                system=scope,
                query_text=normalise(request.question),
                threshold=request.gateway.semantic_threshold,
            )
            found = await find_semantic(clients.engine, embedder_for(embedder_kind), probe)
            if found is None:
                return None
            hit = found
        else:
            return None
        cached = RagAnswer.model_validate_json(hit.text)
    except ValidationError:
        return None  # an entry from another version: the workflow path replaces it
    CACHE_LOOKUPS.labels(layer, "hit").inc()
    served = hit_id()
    await record(
        clients.quick,
        LedgerRow(
            call_key=f"{served}:{layer}",
            context=request.context,
            workflow_id=served,
            run_id="",
            provider="cache",
            model=hit.model,
            usage=Usage(),
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            cost_usd=0.0,
            cache_layer="exact" if layer == "answer_exact" else "semantic",
            cache_key=key if layer == "answer_exact" else hit.cached_key,
            cache_entry=hit.entry or None,
        ),
    )
    answer = cached.model_copy(
        update={
            "cache_layer": layer,
            "usage": Usage(),
            "cost_usd": 0.0,
            "safety": [verdict],
            "timings_ms": {"total": round((time.perf_counter() - started) * 1000, 3)},
        }
    )
    return served, answer
