"""Gateway activities: exact cache, tenant spend, circuit admission, and the provider attempt.

The cache and spend lookups are short and run as local activities (a couple of milliseconds,
against ~30-50 ms for a scheduled activity on the dev server). The provider attempt is a
regular activity so Temporal owns its retries and every attempt is in history.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from activities.events import publish
from activities.gateway_steps import (
    CIRCUIT_WORKFLOW,
    REDIS_DOWN,
    attempt_row,
    cache_down,
    circuit_key,
    failed_row,
    mirrored_state,
    read_exact,
    redacted,
    report_outcome,
    store_exact,
    tenant_spend,
)
from activities.heartbeat import heartbeating
from activities.ledger import (
    attempt_key,
    cache_hit_row,
    charge_rate_limits,
    record,
)
from activities.providers import Provider
from activities.providers.base import TextSink
from keel.contracts.gateway import (
    CacheHit,
    CacheProbe,
    CacheWrite,
    CircuitAdmission,
    ProviderCall,
    ProviderResult,
    TenantSpend,
)
from keel.contracts.guards import CircuitConfig, CircuitState
from keel.guards.costing import total_tokens
from keel.safety.pii import restore
from keel.settings import Settings
from keel.telemetry import CIRCUIT_STATE, activity_context
from keel.tracing import annotate, provider_span

log = logging.getLogger(__name__)


CIRCUIT_LEVELS = {"closed": 0, "half_open": 1, "open": 2}


class GatewayActivities:
    """Holds the gateway's clients: Postgres, Redis, Temporal and the configured providers."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        redis: aioredis.Redis,
        temporal: Client,
        providers: dict[str, Provider],
        settings: Settings,
    ) -> None:
        self.engine = engine
        self.redis = redis
        self.temporal = temporal
        self.providers = providers
        self.settings = settings

    # -- exact cache ---------------------------------------------------------------------
    @activity.defn(name="exact_cache_lookup")
    async def exact_cache_lookup(self, probe: CacheProbe) -> CacheHit | None:
        """The cached answer for this exact request, if any; a hit is written to the ledger.

        Raises:
            ApplicationError: `CacheUnavailable` (not retried) when Redis cannot be reached:
                the workflow answers without the cache instead of waiting on retries.
        """
        with activity_context(probe.context.tenant), cache_down():
            hit = await read_exact(self.redis, probe)
            if hit is not None:
                await record(self.engine, cache_hit_row(probe, hit))
            return hit

    @activity.defn(name="stale_cache_lookup")
    async def stale_cache_lookup(self, probe: CacheProbe) -> CacheHit | None:
        """Last resort when every provider failed: an older answer to the same request."""
        with cache_down():
            stored = await self.redis.get(probe.key + ":stale")
        if stored is None:
            return None
        hit = CacheHit.model_validate_json(stored).model_copy(update={"layer": "stale"})
        await record(self.engine, cache_hit_row(probe, hit))
        return hit

    @activity.defn(name="exact_cache_store")
    async def exact_cache_store(self, write: CacheWrite) -> None:
        """Store the answer under its exact key, plus a long-lived stale copy for fallback."""
        with cache_down():
            await store_exact(self.redis, write)

    # -- budgets -------------------------------------------------------------------------
    @activity.defn(name="tenant_spend")
    async def tenant_spend(self, tenant_id: str) -> TenantSpend:
        """This calendar month's spend and the tenant's monthly limit (None: no limit)."""
        return await tenant_spend(self.engine, tenant_id)

    # -- circuit breakers ----------------------------------------------------------------
    @activity.defn(name="circuit_acquire")
    async def circuit_acquire(self, circuit_id: str, config: CircuitConfig) -> CircuitAdmission:
        """May a call go to this model now?

        The breaker entity mirrors its state to Redis on every transition. While it is
        closed, the answer is yes and no round trip to the entity is needed (the common
        case costs one Redis GET). Open or half-open circuits are asked through an update,
        so cool-down and the single half-open probe are decided in the entity's history.
        """
        mirrored = await self._mirrored(circuit_id)
        if mirrored.state == "closed":
            return CircuitAdmission(allowed=True, state=mirrored)
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            CIRCUIT_WORKFLOW,
            config,
            id=circuit_id,
            task_queue=activity.info().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        admission: CircuitAdmission = await self.temporal.execute_update_with_start_workflow(
            "acquire", start_workflow_operation=start, result_type=CircuitAdmission
        )
        return admission

    @activity.defn(name="circuit_publish")
    async def circuit_publish(self, circuit_id: str, state: CircuitState) -> None:
        """Mirror a breaker's state where every worker can read it in one GET."""
        await self.redis.set(circuit_key(circuit_id), state.model_dump_json())
        CIRCUIT_STATE.labels(circuit_id).set(CIRCUIT_LEVELS[state.state])

    async def _mirrored(self, circuit_id: str) -> CircuitState:
        return await mirrored_state(self.redis, circuit_id)

    async def _report(self, call: ProviderCall, success: bool, admitted_at: str) -> None:
        if call.circuit_id:
            await report_outcome(
                self.temporal,
                self.redis,
                call.circuit_id,
                call.circuit,
                task_queue=activity.info().task_queue,
                success=success,
                admitted_at=admitted_at,
            )

    # -- the provider attempt ------------------------------------------------------------
    @activity.defn(name="provider_complete")
    async def provider_complete(self, call: ProviderCall) -> ProviderResult:
        """One attempt at one provider. Every attempt, failed or not, gets a ledger row."""
        provider = self.providers.get(call.provider)
        if provider is None:
            raise ApplicationError(
                f"provider {call.provider!r} is not configured on this worker",
                type="ProviderNotConfigured",
                non_retryable=True,
            )
        info = activity.info()
        admitted_at = info.current_attempt_scheduled_time.isoformat()
        with activity_context(call.context.tenant):
            request, restore_values = redacted(call)
            started = time.perf_counter()
            try:
                with provider_span(call.provider, request.model):
                    response = await heartbeating(
                        provider.complete(request, on_text=self._sink(call))
                    )
            except ApplicationError as exc:
                await self._failed_attempt(call, exc, (time.perf_counter() - started) * 1000)
                await self._report(call, False, admitted_at)
                raise
            row = attempt_row(
                attempt_key(),
                call.context,
                info.workflow_id or "",
                info.workflow_run_id or "",
                response,
                (time.perf_counter() - started) * 1000,
                self.settings.prices,
            )
            result = ProviderResult(
                text=restore(response.text, restore_values),
                model=response.model,
                provider=response.provider,
                usage=response.usage,
                cost_usd=row.cost_usd,
                latency_ms=row.latency_ms,
                cache_layer=row.cache_layer,
            )
            annotate(
                keel__tenant=call.context.tenant,
                keel__feature=call.context.feature,
                keel__cache_layer=row.cache_layer,
                keel__cost_usd=row.cost_usd,
                gen_ai__system=response.provider,
                gen_ai__request__model=call.request.model,
                gen_ai__response__model=response.model,
                gen_ai__usage__input_tokens=response.usage.input_tokens,
                gen_ai__usage__output_tokens=response.usage.output_tokens,
            )
            written = await record(self.engine, row)
            # The call succeeded and is in the ledger: neither the rate-limit charge nor the
            # breaker report may fail the attempt now (a retry would call the provider again).
            try:
                if written:
                    await charge_rate_limits(
                        self.redis, call.context.api_key_id, total_tokens(response.usage)
                    )
                await self._report(call, True, admitted_at)
            except REDIS_DOWN as exc:
                log.warning("after a successful call, redis is unreachable: %s", exc)
            return result

    def _sink(self, call: ProviderCall) -> TextSink | None:
        """Where the answer's pieces go while it streams: the run's events (`token`, with the
        attempt, so a retried attempt's answer replaces the last one); None: no streaming."""
        if not call.stream_events or call.context.redact_pii:
            return None  # redacted answers are restored only once whole
        info = activity.info()
        workflow_id, attempt = info.workflow_id or "", info.attempt

        async def publish_piece(piece: str) -> None:
            await publish(self.redis, workflow_id, "token", {"text": piece, "attempt": attempt})

        return publish_piece

    async def _failed_attempt(self, call: ProviderCall, exc: ApplicationError, ms: float) -> None:
        info = activity.info()
        row = failed_row(
            attempt_key(),
            call.context,
            info.workflow_id or "",
            info.workflow_run_id or "",
            call.provider,
            call.request.model,
            ms,
            exc.type,
        )
        await record(self.engine, row)
