"""The model-call path, run inside workflow code: every guard decided here lands in history.

    exact cache -> semantic cache -> tenant monthly budget -> for each model of the routed
    chain: run budget check (estimate) -> circuit admission -> provider attempt (Temporal
    retries) -> cache write;  all failed -> stale cached answer -> typed failure

A cache hit spends nothing, so it is served even to a tenant past its monthly budget.

`call_model` is a plain async function used by every workflow that talks to a model
(`ModelCallWorkflow`, the RAG and agent workflows). Cache lookups, spend and circuit checks
are local activities: a few ms each instead of a full activity round trip.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.gateway import GatewayActivities
    from activities.semantic_cache import SemanticCacheActivities
    from keel.contracts.gateway import (
        AttemptRecord,
        CacheHit,
        CacheProbe,
        CacheWrite,
        CallContext,
        CircuitAdmission,
        GatewayConfig,
        ModelCall,
        ModelCallRequest,
        ModelCallResult,
        ProviderCall,
        ProviderResult,
        TenantSpend,
    )
    from keel.contracts.guards import BudgetState, RouteDecision
    from keel.contracts.llm import LlmRequest
    from keel.guards.budget import check_before_call, reconcile, tenant_budget_status
    from keel.guards.cache_key import cache_probe, query_text
    from keel.guards.costing import estimate_cost, estimate_tokens, total_tokens
    from keel.guards.routing import route, score_complexity
    from workflows.common import LOCAL_ACTIVITY_FAILURES, publish_status
    from workflows.policies import (
        BREAKER_RETRY,
        FAIL_FAST,
        PROVIDER_HEARTBEAT,
        PROVIDER_RETRY_POLICY,
        PROVIDER_TIMEOUT,
        QUICK_RETRY,
    )
    from workflows.policies import LOCAL_TIMEOUT as LOCAL


def circuit_workflow_id(scope: str, model: str) -> str:
    """One breaker per model (within a scope), shared by every workflow and worker."""
    return f"keel-circuit-{scope}{model}"


def provider_for(model: str) -> str:
    """Which provider serves a model name."""
    if model.startswith("claude"):
        return "anthropic"
    if model.startswith(("gpt", "o1", "o3", "o4", "chatgpt")):
        return "openai"
    if model.startswith("local-") and model != "local-extractive":
        return "llamacpp"  # the optional local generative model (`Settings.local_llm`)
    return "local"


def provider_request(call: ModelCall, model: str) -> LlmRequest:
    """What one provider attempt at `model` is sent (the workflow and the API's direct path)."""
    return LlmRequest(
        model=model,
        system=call.system,
        messages=call.messages,
        max_tokens=call.max_tokens,
        temperature=call.temperature,
        json_schema=call.json_schema,
    )


def _error_type(exc: ActivityError) -> tuple[str, str]:
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return cause.type or "ApplicationError", cause.message
    return type(cause).__name__ if cause else "ActivityError", str(cause or exc)


def prompt_tokens(call: ModelCall) -> int:
    """The estimated input tokens of a call (system prompt and messages)."""
    return estimate_tokens(call.system) + sum(estimate_tokens(m.content) for m in call.messages)


def not_configured(model: str, config: GatewayConfig) -> AttemptRecord | None:
    """The attempt record of a model that must not be called (no configured provider, or no
    price: an unpriced model could spend past every budget), or None when it may be."""
    provider = provider_for(model)
    if provider in config.providers and model in config.prices:
        return None
    return AttemptRecord(
        model=model,
        provider=provider,
        outcome="not_configured",
        message="" if model in config.prices else "no price for this model",
    )


def plan(call: ModelCall, config: GatewayConfig) -> tuple[list[str], RouteDecision | None, str]:
    """The ordered models to try, the routing decision, and the cache scope."""
    if call.model:
        return [call.model], None, call.model
    score = score_complexity(query_text(call), context_tokens=call.context_tokens)
    decision = route(score, config.routing)
    if call.tier is not None:
        decision = decision.model_copy(
            update={"tier": call.tier, "models": config.routing.chain(call.tier)}
        )
    scope = f"tier:{decision.tier}"
    if "llamacpp" in config.providers:
        # A tier's cached answers came from the models it could reach: answers the extractive
        # provider gave before the local model was enabled must not stand in for the model's.
        scope += "+llamacpp"
    return list(decision.models), decision, scope


async def call_model(
    call: ModelCall, context: CallContext, config: GatewayConfig, budget: BudgetState
) -> tuple[ModelCallResult, BudgetState]:
    """Answer `call` through caches, routing, budgets, breakers and fallback.

    Returns the result and the run's budget state after the call. Never raises for budget,
    provider or cache failures: the result says what happened (`ok`, `stop_reason`).
    """
    info = workflow.info()
    models, decision, scope = plan(call, config)
    cacheable = call.cache and not call.time_sensitive
    probe = cache_probe(
        call,
        context,
        scope,
        config.semantic_threshold,
        workflow_id=info.workflow_id,
        run_id=info.run_id,
    )

    hit = await _cached(probe, config, cacheable)
    if hit is not None:
        return ModelCallResult(
            ok=True,
            text=hit.text,
            model=hit.model,
            provider="cache",
            cache_layer=hit.layer,
            route=decision,
        ), budget

    spend: TenantSpend = await workflow.execute_local_activity_method(
        GatewayActivities.tenant_spend,
        context.tenant_id,
        start_to_close_timeout=LOCAL,
        retry_policy=QUICK_RETRY,
    )
    tenant_status = None
    if spend.limit_usd is not None:
        tenant_status = tenant_budget_status(spend.spent_usd, spend.limit_usd, spend.soft_ratio)
        if tenant_status.level == "hard_stop":
            return ModelCallResult(
                ok=False,
                route=decision,
                stop_reason="tenant_budget_exhausted",
                detail=f"tenant {context.tenant} has spent {tenant_status.percent:.0f}% of its "
                f"monthly budget of ${spend.limit_usd:.2f}",
                tenant_budget=tenant_status,
            ), budget

    attempts: list[AttemptRecord] = []
    asked_tokens = prompt_tokens(call)
    for model in models:
        provider = provider_for(model)
        skip = not_configured(model, config)
        if skip is not None:
            attempts.append(skip)
            continue
        estimated_usd = estimate_cost(model, asked_tokens, call.max_tokens, config.prices)
        verdict = check_before_call(
            budget, context.run_budget, asked_tokens + call.max_tokens, estimated_usd
        )
        if not verdict.allowed:
            attempts.append(
                AttemptRecord(
                    model=model, provider=provider, outcome="budget", message=verdict.detail
                )
            )
            return ModelCallResult(
                ok=False,
                route=decision,
                attempts=attempts,
                stop_reason="budget_exhausted",
                detail=verdict.detail,
                tenant_budget=tenant_status,
            ), budget
        circuit_id = circuit_workflow_id(config.circuit_scope, model)
        if not await _admitted(circuit_id, config):
            attempts.append(AttemptRecord(model=model, provider=provider, outcome="circuit_open"))
            continue
        request = provider_request(call, model)
        try:
            answer: ProviderResult = await workflow.execute_activity_method(
                GatewayActivities.provider_complete,
                ProviderCall(
                    context=context,
                    request=request,
                    provider=provider,
                    workflow_id=info.workflow_id,
                    run_id=info.run_id,
                    circuit_id=circuit_id,
                    circuit=config.circuit,
                    stream_events=call.stream_events,
                ),
                task_queue=config.cpu_queue or info.task_queue,
                start_to_close_timeout=PROVIDER_TIMEOUT,
                heartbeat_timeout=PROVIDER_HEARTBEAT,
                retry_policy=PROVIDER_RETRY_POLICY,
            )
        except ActivityError as exc:
            kind, message = _error_type(exc)
            attempts.append(
                AttemptRecord(
                    model=model,
                    provider=provider,
                    outcome="failed",
                    error_type=kind,
                    message=message[:300],
                )
            )
            if kind in FAIL_FAST:
                return ModelCallResult(
                    ok=False,
                    route=decision,
                    attempts=attempts,
                    stop_reason="all_providers_failed",
                    detail=f"{kind}: {message[:300]}",
                    tenant_budget=tenant_status,
                ), budget
            continue
        attempts.append(AttemptRecord(model=answer.model, provider=provider, outcome="ok"))
        budget = reconcile(budget, total_tokens(answer.usage), answer.cost_usd)
        publish_status("running", cost_usd=budget.spent_usd)
        if cacheable:
            await _store(call, probe, answer, config)
        return ModelCallResult(
            ok=True,
            text=answer.text,
            model=answer.model,
            provider=answer.provider,
            usage=answer.usage,
            cost_usd=answer.cost_usd,
            cache_layer=answer.cache_layer,
            route=decision,
            attempts=attempts,
            tenant_budget=tenant_status,
        ), budget

    if cacheable:
        try:
            stale: CacheHit | None = await workflow.execute_local_activity_method(
                GatewayActivities.stale_cache_lookup,
                probe,
                start_to_close_timeout=LOCAL,
                retry_policy=QUICK_RETRY,
            )
        except LOCAL_ACTIVITY_FAILURES:
            stale = None
        if stale is not None:
            return ModelCallResult(
                ok=True,
                text=stale.text,
                model=stale.model,
                provider="cache",
                cache_layer="stale",
                route=decision,
                attempts=attempts,
                detail="every provider failed; answered from an earlier cached answer",
                tenant_budget=tenant_status,
            ), budget
    return ModelCallResult(
        ok=False,
        route=decision,
        attempts=attempts,
        stop_reason="all_providers_failed",
        detail="no model in the chain could answer: "
        + ", ".join(f"{a.model}={a.outcome}" for a in attempts),
        tenant_budget=tenant_status,
    ), budget


async def _admitted(circuit_id: str, config: GatewayConfig) -> bool:
    """Ask the breaker. If the breaker itself cannot answer, fail open: a breaker exists to
    save time on a failing provider, never to stop calls to a healthy one."""
    try:
        admission: CircuitAdmission = await workflow.execute_local_activity_method(
            GatewayActivities.circuit_acquire,
            args=[circuit_id, config.circuit],
            start_to_close_timeout=LOCAL,
            retry_policy=BREAKER_RETRY,
        )
    except LOCAL_ACTIVITY_FAILURES:
        workflow.logger.warning("circuit breaker %s unreachable; admitting the call", circuit_id)
        return True
    return admission.allowed


async def _cached(probe: CacheProbe, config: GatewayConfig, cacheable: bool) -> CacheHit | None:
    if not cacheable:
        return None
    if config.exact_cache:
        try:
            hit: CacheHit | None = await workflow.execute_local_activity_method(
                GatewayActivities.exact_cache_lookup,
                probe,
                start_to_close_timeout=LOCAL,
                retry_policy=QUICK_RETRY,
            )
        except LOCAL_ACTIVITY_FAILURES as exc:  # Redis down: answer without the exact cache
            workflow.logger.warning("exact cache unavailable: %s", exc.cause or exc)
            hit = None
        if hit is not None:
            return hit
    if config.semantic_cache and probe.query_text:
        semantic: CacheHit | None = await workflow.execute_activity_method(
            SemanticCacheActivities.semantic_cache_lookup,
            probe,
            task_queue=config.gpu_queue,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=QUICK_RETRY,
        )
        return semantic
    return None


def cache_write(
    call: ModelCall, probe: CacheProbe, text: str, model: str, config: GatewayConfig
) -> CacheWrite:
    """What an answer to `call` is cached as (the workflow and the API's direct path)."""
    return CacheWrite(
        context=probe.context,
        key=probe.key,
        model_scope=probe.model_scope,
        system=call.system,
        query_text=probe.query_text,
        text=text,
        model=model,
        ttl_seconds=config.exact_ttl_seconds,
        cited_document_ids=call.cited_document_ids,
        semantic=config.semantic_cache,
    )


async def _store(
    call: ModelCall, probe: CacheProbe, answer: ProviderResult, config: GatewayConfig
) -> None:
    write = cache_write(call, probe, answer.text, answer.model, config)
    if config.exact_cache:
        try:
            await workflow.execute_local_activity_method(
                GatewayActivities.exact_cache_store,
                write,
                start_to_close_timeout=LOCAL,
                retry_policy=QUICK_RETRY,
            )
        except LOCAL_ACTIVITY_FAILURES as exc:  # Redis down: the answer stands, uncached
            workflow.logger.warning("exact cache unavailable: %s", exc.cause or exc)
    if config.semantic_cache and probe.query_text:
        await workflow.execute_activity_method(
            SemanticCacheActivities.semantic_cache_store,
            write,
            task_queue=config.gpu_queue,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=QUICK_RETRY,
        )


@workflow.defn
class ModelCallWorkflow:
    """One model call as its own run: the gateway's front door for the API and agents."""

    @workflow.run
    async def run(self, request: ModelCallRequest) -> ModelCallResult:
        result, budget = await call_model(
            request.call, request.context, request.config, BudgetState()
        )
        publish_status(
            "completed" if result.ok else (result.stop_reason or "failed"),
            cost_usd=budget.spent_usd,
        )
        return result
