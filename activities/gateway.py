"""Gateway activities: exact cache, tenant spend, circuit admission, and the provider attempt.

The cache and spend lookups are short and run as local activities (a couple of milliseconds,
against ~30-50 ms for a scheduled activity on the dev server). The provider attempt is a
regular activity so Temporal owns its retries and every attempt is in history.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from activities.ledger import (
    LedgerRow,
    attempt_key,
    cache_hit_row,
    charge_rate_limits,
    record,
)
from activities.providers import Provider
from keel.contracts.gateway import (
    CacheHit,
    CacheLayer,
    CacheProbe,
    CacheWrite,
    CallContext,
    CircuitAdmission,
    CircuitOutcome,
    ProviderCall,
    ProviderResult,
    TenantSpend,
)
from keel.contracts.guards import CircuitConfig, CircuitState
from keel.contracts.llm import LlmRequest, LlmResponse, Usage
from keel.errors import ErrorType, failure
from keel.guards.costing import cost_usd, total_tokens
from keel.safety.pii import redact, restore, restore_map
from keel.settings import Settings
from keel.telemetry import CACHE_LOOKUPS, activity_context

log = logging.getLogger(__name__)
STALE_TTL = timedelta(days=7)  # how long an answer stays usable as the last-resort fallback


# The breaker entity (`workflows.circuit.CircuitBreakerWorkflow`), named: activities sit
# below workflows and do not import them.
CIRCUIT_WORKFLOW = "CircuitBreakerWorkflow"


REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


@contextmanager
def cache_down() -> Iterator[None]:
    """Redis errors as a non-retryable `CacheUnavailable` failure (see `keel.errors`)."""
    try:
        yield
    except REDIS_DOWN as exc:
        CACHE_LOOKUPS.labels("exact", "unavailable").inc()
        raise failure(ErrorType.CACHE_UNAVAILABLE, f"redis is unreachable: {exc}") from exc


def circuit_key(circuit_id: str) -> str:
    return f"keel:circuit:{circuit_id}"


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
                response = await provider.complete(request)
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


async def read_exact(redis: aioredis.Redis, probe: CacheProbe) -> CacheHit | None:
    """The entry stored under the probe's exact key (not yet recorded in the ledger)."""
    stored = await redis.get(probe.key)
    if stored is None:
        CACHE_LOOKUPS.labels("exact", "miss").inc()
        return None
    CACHE_LOOKUPS.labels("exact", "hit").inc()
    return CacheHit.model_validate_json(stored).model_copy(
        update={"layer": "exact", "cached_key": probe.key}
    )


def attempt_row(
    call_key: str,
    context: CallContext,
    workflow_id: str,
    run_id: str,
    response: LlmResponse,
    latency_ms: float,
    prices: dict[str, Any],
) -> LedgerRow:
    """The ledger row of a provider attempt that answered, priced and with its cache layer."""
    layer: CacheLayer = "provider" if response.usage.cached_input_tokens else "none"
    return LedgerRow(
        call_key=call_key,
        context=context,
        workflow_id=workflow_id,
        run_id=run_id,
        provider=response.provider,
        model=response.model,
        usage=response.usage,
        latency_ms=latency_ms,
        cost_usd=cost_usd(response.model, response.usage, priced(prices, response.model)),
        cache_layer=layer,
    )


def failed_row(
    call_key: str,
    context: CallContext,
    workflow_id: str,
    run_id: str,
    provider: str,
    model: str,
    latency_ms: float,
    error_type: str | None,
) -> LedgerRow:
    """The ledger row of a provider attempt that failed: no tokens, no cost."""
    return LedgerRow(
        call_key=call_key,
        context=context,
        workflow_id=workflow_id,
        run_id=run_id,
        provider=provider,
        model=model,
        usage=Usage(),
        latency_ms=latency_ms,
        cost_usd=0.0,
        cache_layer="none",
        status="error",
        error_type=error_type,
    )


async def store_exact(redis: aioredis.Redis, write: CacheWrite) -> None:
    """Store the answer under its exact key, plus a long-lived stale copy for fallback.

    Each cited document remembers the keys that cited it, so a change to the document
    can drop them (see `invalidate_documents`).
    """
    value = CacheHit(
        layer="exact", text=write.text, model=write.model, entry=uuid.uuid4().hex
    ).model_dump_json()
    stale = write.key + ":stale"
    keep = int(STALE_TTL.total_seconds())
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(write.key, value, ex=write.ttl_seconds)
        pipe.set(stale, value, ex=keep)
        for doc in write.cited_document_ids:
            index = f"keel:cites:{write.context.tenant_id}:{doc}"
            pipe.sadd(index, write.key, stale)
            pipe.expire(index, keep)
        await pipe.execute()


async def tenant_spend(engine: AsyncEngine, tenant_id: str) -> TenantSpend:
    """This calendar month's spend and the tenant's monthly limit (None: no limit)."""
    month_start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    """
                    SELECT
                      (SELECT coalesce(sum(cost_usd), 0) FROM llm_calls
                        WHERE tenant_id = :t AND created_at >= :since),
                      (SELECT limit_usd FROM budgets WHERE tenant_id = :t AND period = 'month'),
                      (SELECT soft_ratio FROM budgets WHERE tenant_id = :t AND period = 'month')
                    """
                ),
                {"t": uuid.UUID(tenant_id), "since": month_start},
            )
        ).one()
    return TenantSpend(
        spent_usd=float(row[0]),
        limit_usd=float(row[1]) if row[1] is not None else None,
        soft_ratio=float(row[2]) if row[2] is not None else 0.7,
    )


async def mirrored_state(redis: aioredis.Redis, circuit_id: str) -> CircuitState:
    """A breaker's state as its entity last mirrored it (closed when never mirrored)."""
    raw = await redis.get(circuit_key(circuit_id))
    return CircuitState.model_validate_json(raw) if raw else CircuitState()


async def report_outcome(
    temporal: Client,
    redis: aioredis.Redis,
    circuit_id: str,
    circuit: CircuitConfig,
    *,
    task_queue: str,
    success: bool,
    admitted_at: str,
) -> None:
    """Tell the breaker how an attempt went (starting the breaker on its first report).

    A success while the breaker is closed with no failures counted changes nothing, so
    it is not sent: the entity's history grows with failures and recoveries only.
    """
    if success:
        mirrored = await mirrored_state(redis, circuit_id)
        if mirrored.state == "closed" and mirrored.consecutive_failures == 0:
            return
    await temporal.start_workflow(
        CIRCUIT_WORKFLOW,
        circuit,
        id=circuit_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal="report",
        start_signal_args=[CircuitOutcome(success=success, at_attempt_started=admitted_at)],
    )


def priced(prices: dict[str, Any], model: str) -> dict[str, Any]:
    """The price table, with `model` resolved: providers answer with dated names
    (`claude-haiku-4-5-20251001`), priced as their listed prefix. A model with no price
    at all is charged the highest listed rates, so an unpriced model can never slip
    past a budget."""
    table: dict[str, Any] = dict(prices)
    if model in table:
        return table
    prefixes = [name for name in table if model.startswith(name)]
    if prefixes:
        table[model] = table[max(prefixes, key=len)]
    else:
        log.warning("no price for model %s: charging the highest rates", model)
        table[model] = max(table.values(), key=lambda p: p.output)
    return table


def redacted(call: ProviderCall) -> tuple[LlmRequest, dict[str, str]]:
    """The request as the provider may see it, and the placeholders we may fill back in.

    With `redact_pii`, every PII value becomes a typed placeholder before leaving this
    process; in the answer, only values the user wrote themselves are restored.
    """
    if not call.context.redact_pii:
        return call.request, {}
    # One pass over all texts, so placeholders are numbered once across the whole request.
    separator = "\n\u241e\n"
    texts = [call.request.system, *(m.content for m in call.request.messages)]
    redacted, findings = redact(separator.join(texts))
    system, *contents = redacted.split(separator)
    messages = [
        m.model_copy(update={"content": c})
        for m, c in zip(call.request.messages, contents, strict=True)
    ]
    user_text = "\n".join(m.content for m in call.request.messages if m.role == "user")
    request = call.request.model_copy(update={"messages": messages, "system": system})
    return request, restore_map(findings, user_text)
