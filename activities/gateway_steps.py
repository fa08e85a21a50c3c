"""The steps of a model call that the gateway's activities and the API's direct path share,
one function each: the exact-cache read and write, the tenant's spend, the breaker's mirrored
state and the report of an outcome to it, pricing, redaction, and the ledger rows of an
attempt that answered or failed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from activities.ledger import (
    LedgerRow,
)
from keel.contracts.gateway import (
    CacheHit,
    CacheLayer,
    CacheProbe,
    CacheWrite,
    CallContext,
    CircuitOutcome,
    ProviderCall,
    TenantSpend,
)
from keel.contracts.guards import CircuitConfig, CircuitState
from keel.contracts.llm import LlmRequest, LlmResponse, Usage
from keel.errors import ErrorType, failure
from keel.guards.costing import cost_usd
from keel.safety.pii import redact, restore_map
from keel.telemetry import CACHE_LOOKUPS, TENANT_BUDGET_USED

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
    """This calendar month's (UTC) spend and the tenant's monthly limit (None: no limit).

    The spend is the ledger's running monthly total (migration 0010): one key lookup however
    many calls the tenant made this month.
    """
    month = datetime.now(UTC).date().replace(day=1)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    """
                    SELECT
                      coalesce((SELECT cost_usd FROM ledger_month_spend
                                 WHERE tenant_id = :t AND month = :month), 0),
                      (SELECT limit_usd FROM budgets WHERE tenant_id = :t AND period = 'month'),
                      (SELECT soft_ratio FROM budgets WHERE tenant_id = :t AND period = 'month')
                    """
                ),
                {"t": uuid.UUID(tenant_id), "month": month},
            )
        ).one()
    spend = TenantSpend(
        spent_usd=float(row[0]),
        limit_usd=float(row[1]) if row[1] is not None else None,
        soft_ratio=float(row[2]) if row[2] is not None else 0.7,
    )
    if spend.limit_usd:
        TENANT_BUDGET_USED.labels(tenant_id).set(spend.spent_usd / spend.limit_usd)
    return spend


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
