"""Exact answer-cache hits served by the API itself, before any workflow starts.

A hit is one Redis GET; starting a workflow to make that GET costs 50-85 ms on the dev server
(a start, two workflow tasks, a result poll). So the route computes the very key
`RagQueryWorkflow` would (the same input check, the same corpus generation, the same scope),
and only on a hit answers here. A miss, a blocked or redacted question, or anything unusual
falls through to the durable workflow, which decides for itself as before.

What stays durable: the hit's ledger row is committed to Postgres before the answer is sent
(without waiting for the WAL flush: see `activities.ledger.record`),
under a key unique to this request, and says which entry answered (cache key and the id the
entry was stored under), so `GET /v1/costs` counts it even if the process dies right after.
"""

from __future__ import annotations

import time
import uuid

from pydantic import ValidationError

from activities.ledger import LedgerRow, record
from activities.safety import check_input
from keel.auth import Principal
from keel.clients import Clients
from keel.contracts.gateway import CacheHit
from keel.contracts.llm import Usage
from keel.contracts.rag import RagAnswer, RagQueryRequest
from keel.contracts.safety import SafetyPolicy
from keel.corpus import corpus_generation
from keel.telemetry import CACHE_LOOKUPS
from workflows.guards.answer_key import answer_key, answer_scope

POLICY = SafetyPolicy()


def hit_id() -> str:
    return f"rag-hit-{uuid.uuid4().hex}"


async def serve_hit(
    clients: Clients, principal: Principal, request: RagQueryRequest
) -> tuple[str, RagAnswer] | None:
    """The cached answer and the id it was served under, or None to run the workflow."""
    started = time.perf_counter()
    if not request.rag.answer_cache:
        return None
    verdict = check_input(request.question, POLICY)
    if verdict.blocked or verdict.redacted_text is not None:
        return None  # the workflow records the refusal or serves the redacted question
    async with clients.engine.connect() as conn:
        generation = await corpus_generation(conn, principal.tenant_id)
    scope = answer_scope(str(principal.tenant_id), request.filters, request.rag, generation)
    key = answer_key(scope, request.question)
    stored = await clients.redis.get(key)
    if stored is None:
        return None
    try:
        hit = CacheHit.model_validate_json(stored)
        cached = RagAnswer.model_validate_json(hit.text)
    except ValidationError:
        return None  # an entry from another version: the workflow path replaces it
    CACHE_LOOKUPS.labels("answer_exact", "hit").inc()
    served = hit_id()
    await record(
        clients.engine,
        LedgerRow(
            call_key=f"{served}:answer_exact",
            context=request.context,
            workflow_id=served,
            run_id="",
            provider="cache",
            model=hit.model,
            usage=Usage(),
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            cost_usd=0.0,
            cache_layer="exact",
            cache_key=key,
            cache_entry=hit.entry or None,
        ),
        flush_wal=False,
    )
    answer = cached.model_copy(
        update={
            "cache_layer": "answer_exact",
            "usage": Usage(),
            "cost_usd": 0.0,
            "safety": [verdict],
            "timings_ms": {"total": round((time.perf_counter() - started) * 1000, 3)},
        }
    )
    return served, answer
