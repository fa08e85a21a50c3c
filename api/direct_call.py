"""A model call's happy path served by the API itself; anything else becomes a durable run.

A `ModelCallWorkflow` costs ~100-150 ms on the dev server before the provider is even asked
(a start, two or three workflow tasks, a provider activity, a result poll: README, "Where the
~35 ms workflow-task dispatch comes from"), against a few ms for the SDK call itself. Most
calls need none of what the workflow adds: no retry, no fallback, no half-open breaker
probe. So the route runs the same guards, in the same order and with the same functions, in
this process:

    exact cache -> semantic cache -> tenant monthly budget -> run budget (estimate) ->
    breaker (mirrored state must be closed) -> ONE attempt at the first routed model ->
    ledger row -> caches

and answers. The first thing off the happy path (a provider error or timeout, a breaker not
closed, a budget refusal, an unconfigured or unpriced model, a PII-redacting tenant) returns
None, and the route starts the workflow, which decides for itself from the start: retries
with backoff, the fallback chain, the stale answer, the typed refusal. A failed direct
attempt keeps its ledger row and is reported to the breaker, exactly as a failed activity
attempt is.

What stays durable: the ledger row of the direct attempt is committed before the answer is
sent (under a key unique to this request), so `GET /v1/costs` and budgets see the spend even
if the API process dies right after. It commits without waiting for the WAL flush (as cache
hits do, `activities.ledger.record`): only a crash of PostgreSQL itself within a few hundred
ms could lose it, and that saves 4-8 ms of fsync per call here. The semantic-cache entry is
written beside the response (an entry lost to a crash only costs a later miss).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from activities.gateway_steps import (
    REDIS_DOWN,
    attempt_row,
    failed_row,
    mirrored_state,
    read_exact,
    report_outcome,
    store_exact,
    tenant_spend,
)
from activities.ledger import cache_hit_row, charge_rate_limits, record
from activities.providers import Provider
from activities.semantic_cache import (
    SemanticCacheActivities,
    embed_question,
    find_semantic,
    store_semantic,
)
from api.answer_cache import embedder_for
from keel.clients import Clients
from keel.contracts.gateway import (
    AttemptRecord,
    CacheHit,
    CacheProbe,
    GatewayConfig,
    ModelCall,
    ModelCallRequest,
    ModelCallResult,
)
from keel.contracts.guards import BudgetState
from keel.contracts.llm import LlmResponse
from keel.guards.budget import check_before_call, tenant_budget_status
from keel.guards.cache_key import cache_probe
from keel.guards.costing import estimate_cost, total_tokens
from keel.settings import Settings
from keel.tracing import provider_span
from workflows.llm import (
    cache_write,
    circuit_workflow_id,
    not_configured,
    plan,
    prompt_tokens,
    provider_for,
    provider_request,
)

log = logging.getLogger(__name__)


def direct_id() -> str:
    return f"model-call-direct-{uuid.uuid4().hex}"


# Semantic-cache writes run detached from the request: a Starlette background task would hold
# the keep-alive connection (and so the client's next request) until it finished.
_detached: set[asyncio.Task[None]] = set()


def _detach(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _detached.add(task)
    task.add_done_callback(_finished)


def _finished(task: asyncio.Task[None]) -> None:
    _detached.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("semantic cache write failed: %s", task.exception())


async def serve_direct(
    clients: Clients,
    config: Settings,
    providers: dict[str, Provider],
    request: ModelCallRequest,
    *,
    wait_seconds: float,
) -> tuple[str, ModelCallResult] | None:
    """The id the call was served under and its result, or None to run the durable workflow."""
    started = time.perf_counter()
    call, context, gateway = request.call, request.context, request.config
    if wait_seconds <= 0 or context.redact_pii:
        return None  # asked for a run id, or redaction: the workflow's activity does that
    served = direct_id()
    models, decision, scope = plan(call, gateway)
    cacheable = call.cache and not call.time_sensitive
    probe = cache_probe(call, context, scope, gateway.semantic_threshold, workflow_id=served)
    # The lookups a miss needs anyway run side by side with the cache lookup.
    try:
        looked, spend, circuits = await asyncio.gather(
            _cached(clients, config, probe, gateway) if cacheable else _nothing(),
            tenant_spend(clients.engine, context.tenant_id),
            asyncio.gather(
                *(
                    mirrored_state(clients.redis, circuit_workflow_id(gateway.circuit_scope, m))
                    for m in models
                )
            ),
        )
    except REDIS_DOWN:
        return None  # no cache, no breaker state: the workflow answers without them
    hit, vector = looked
    if hit is not None:
        latency = round((time.perf_counter() - started) * 1000, 3)
        row = cache_hit_row(probe, hit, call_key=f"{served}/{hit.layer}", latency_ms=latency)
        await record(clients.quick, row)
        result = ModelCallResult(
            ok=True,
            text=hit.text,
            model=hit.model,
            provider="cache",
            cache_layer=hit.layer,
            route=decision,
        )
        return served, result

    tenant_status = None
    if spend.limit_usd is not None:
        tenant_status = tenant_budget_status(spend.spent_usd, spend.limit_usd, spend.soft_ratio)
        if tenant_status.level == "hard_stop":
            return None
    chosen = first_configured(models, gateway)
    if chosen is None:
        return None
    model, provider_name, skipped = chosen
    provider = providers.get(provider_name)
    if provider is None:
        return None
    tokens = prompt_tokens(call)
    estimated = estimate_cost(model, tokens, call.max_tokens, gateway.prices)
    if not check_before_call(
        BudgetState(), context.run_budget, tokens + call.max_tokens, estimated
    ).allowed:
        return None
    circuit_id = circuit_workflow_id(gateway.circuit_scope, model)
    circuit = circuits[models.index(model)]
    if circuit.state != "closed":
        return None

    attempt = provider_request(call, model)
    admitted_at = datetime.now(UTC).isoformat()

    asked = time.perf_counter()
    key = f"{served}/direct"
    try:
        with provider_span(provider_name, attempt.model):
            response = await asyncio.wait_for(provider.complete(attempt), wait_seconds)
    except Exception as exc:  # any failure: the durable run owns retries and fallback
        kind = getattr(exc, "type", None) or type(exc).__name__
        ms = (time.perf_counter() - asked) * 1000
        row = failed_row(key, context, served, "", provider_name, model, ms, kind)
        await record(clients.engine, row)
        await _report(clients, config, gateway, circuit_id, False, admitted_at)
        return None
    ms = (time.perf_counter() - asked) * 1000
    row = attempt_row(key, context, served, "", response, ms, config.prices)
    # The key is this request's own, so the row is always new: charge the rate limits and
    # write the exact cache while it commits.
    # Only a cacheable answer builds the store coroutine: one never awaited is a warning.
    stores = (
        _store(clients, config, probe, response, call, gateway, vector)
        if cacheable
        else asyncio.sleep(0)
    )
    written, *redis_work = await asyncio.gather(
        record(clients.quick, row),
        charge_rate_limits(clients.redis, context.api_key_id, total_tokens(response.usage)),
        stores,
        return_exceptions=True,
    )
    if isinstance(written, BaseException):
        raise written  # the ledger is Postgres: without it the call must not look free
    for failed in redis_work:  # the answer stands; the cache or rate-limit write is lost
        if isinstance(failed, BaseException):
            log.warning("after a successful call, a redis write failed: %s", failed)
    if circuit.consecutive_failures:
        with contextlib.suppress(*REDIS_DOWN):
            await _report(clients, config, gateway, circuit_id, True, admitted_at)
    result = ModelCallResult(
        ok=True,
        text=response.text,
        model=response.model,
        provider=response.provider,
        usage=response.usage,
        cost_usd=row.cost_usd,
        cache_layer=row.cache_layer,
        route=decision,
        attempts=[
            *skipped,
            AttemptRecord(model=response.model, provider=provider_name, outcome="ok"),
        ],
        tenant_budget=tenant_status,
    )
    return served, result


async def _report(
    clients: Clients,
    config: Settings,
    gateway: GatewayConfig,
    circuit_id: str,
    success: bool,
    admitted_at: str,
) -> None:
    """Tell the model's breaker how the direct attempt went, as an activity attempt would."""
    await report_outcome(
        clients.temporal,
        clients.redis,
        circuit_id,
        gateway.circuit,
        task_queue=config.task_queue_cpu,
        success=success,
        admitted_at=admitted_at,
    )


def first_configured(
    models: list[str], gateway: GatewayConfig
) -> tuple[str, str, list[AttemptRecord]] | None:
    """As the workflow does: skip models with no configured provider or no price."""
    skipped: list[AttemptRecord] = []
    for model in models:
        skip = not_configured(model, gateway)
        if skip is None:
            return model, provider_for(model), skipped
        skipped.append(skip)
    return None


async def _store(
    clients: Clients,
    config: Settings,
    probe: CacheProbe,
    response: LlmResponse,
    call: ModelCall,
    gateway: GatewayConfig,
    vector: list[float] | None,
) -> None:
    """Write the exact cache now, and start the semantic write without waiting for it."""
    write = cache_write(call, probe, response.text, response.model, gateway)
    if gateway.exact_cache:
        await store_exact(clients.redis, write)
    if not (gateway.semantic_cache and probe.query_text):
        return None
    if vector is not None:  # the lookup's embedding of this very question
        _detach(store_semantic(clients.quick, write, vector))
        return
    semantic = SemanticCacheActivities(
        engine=clients.engine, embedder=embedder_for(config.embedder)
    )
    _detach(semantic.semantic_cache_store(write))


async def _nothing() -> tuple[CacheHit | None, list[float] | None]:
    return None, None


async def _cached(
    clients: Clients, config: Settings, probe: CacheProbe, gateway: GatewayConfig
) -> tuple[CacheHit | None, list[float] | None]:
    """A hit (exact, then semantic) and the question's embedding if one was computed."""
    if gateway.exact_cache:
        hit = await read_exact(clients.redis, probe)
        if hit is not None:
            return hit, None
    if not (gateway.semantic_cache and probe.query_text):
        return None, None
    embedder = embedder_for(config.embedder)
    vector = await embed_question(embedder, probe.query_text)
    return await find_semantic(clients.quick, embedder, probe, vector), vector
