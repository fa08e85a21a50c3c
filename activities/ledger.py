"""The LLM-call ledger: one row per provider attempt and per cache hit.

Rows are keyed by `call_key` (workflow id / run id / activity id / attempt), and inserts
ignore a key already present, so an activity retried after writing its row never writes it
twice.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from keel.contracts.gateway import CacheHit, CacheLayer, CacheProbe, CallContext
from keel.contracts.llm import Usage
from keel.quickdb import QuickDb
from keel.telemetry import LLM_CALLS, LLM_COST


@dataclass(frozen=True)
class LedgerRow:
    call_key: str
    context: CallContext
    workflow_id: str
    run_id: str
    provider: str
    model: str
    usage: Usage
    latency_ms: float
    cost_usd: float
    cache_layer: CacheLayer
    status: str = "ok"
    error_type: str | None = None
    cache_key: str | None = None
    cache_entry: str | None = None


def attempt_key(suffix: str = "") -> str:
    """A ledger key unique to this activity attempt (stable across a replay of the same one)."""
    info = activity.info()
    return f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}/{info.attempt}{suffix}"


_COLUMNS = """call_key, tenant_id, feature, workflow_id, run_id, provider, model, tokens_in,
    tokens_out, tokens_cached, latency_ms, cost_usd, cache_layer, status, error_type, cache_key,
    cache_entry"""
_VALUES = """:call_key, :tenant_id, :feature, :workflow_id, :run_id, :provider, :model, :tokens_in,
    :tokens_out, :tokens_cached, :latency_ms, :cost_usd, :cache_layer, :status, :error_type,
    :cache_key, :cache_entry"""
_INSERT = text(
    f"INSERT INTO llm_calls ({_COLUMNS}) VALUES ({_VALUES}) ON CONFLICT (call_key) DO NOTHING"
)
# One statement, its own transaction in autocommit: the row it inserts turns off the WAL-flush
# wait for that transaction's commit (`set_config(..., true)` is transaction-local).
_PG_VALUES = re.sub(r":(\w+)", r"%(\1)s", _VALUES)  # psycopg's placeholders
_INSERT_RELAXED = (
    f"INSERT INTO llm_calls ({_COLUMNS}) VALUES ({_PG_VALUES}) ON CONFLICT (call_key) DO NOTHING "
    "RETURNING set_config('synchronous_commit', 'off', true)"
)


async def record(engine: AsyncEngine | QuickDb, row: LedgerRow) -> bool:
    """Insert the row unless its key exists; True when written.

    Through a `QuickDb` (the API's cache hits and direct calls) the row commits without
    waiting for the WAL flush: it is committed and survives the caller dying at once, and only
    a crash of PostgreSQL itself within a few hundred ms could lose it; that trade saves 2-3 ms
    a request. Through the engine (activities) the commit waits for the flush.
    """
    values = {
        "call_key": row.call_key,
        "tenant_id": uuid.UUID(row.context.tenant_id),
        "feature": row.context.feature,
        "workflow_id": row.workflow_id,
        "run_id": row.run_id,
        "provider": row.provider,
        "model": row.model,
        "tokens_in": row.usage.input_tokens + row.usage.cache_write_tokens,
        "tokens_out": row.usage.output_tokens,
        "tokens_cached": row.usage.cached_input_tokens,
        "latency_ms": row.latency_ms,
        "cost_usd": row.cost_usd,
        "cache_layer": "none" if row.cache_layer == "stale" else row.cache_layer,
        "status": row.status,
        "error_type": row.error_type,
        "cache_key": row.cache_key,
        "cache_entry": row.cache_entry,
    }
    if isinstance(engine, QuickDb):
        was_written = await engine.fetchone(_INSERT_RELAXED, values) is not None
    else:
        async with engine.begin() as conn:
            was_written = (await conn.execute(_INSERT, values)).rowcount == 1
    if was_written:
        LLM_CALLS.labels(row.provider, row.model, row.cache_layer, row.status).inc()
        if row.cost_usd:
            LLM_COST.labels(row.context.tenant, row.context.feature, row.model).inc(row.cost_usd)
    return was_written


async def charge_rate_limits(redis: aioredis.Redis, api_key_id: str, tokens: int) -> None:
    """Add `tokens` to the key's per-minute and per-day windows (read by the API's limiter)."""
    if not api_key_id or tokens <= 0:
        return
    now = int(time.time())
    minute = f"keel:rl:{api_key_id}:m:{now // 60}"
    day = f"keel:rl:{api_key_id}:d:{datetime.now(UTC):%Y%m%d}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incrby(minute, tokens)
        pipe.expire(minute, 120)
        pipe.incrby(day, tokens)
        pipe.expire(day, 2 * 86400)
        await pipe.execute()


def cache_hit_row(
    probe: CacheProbe, hit: CacheHit, *, call_key: str | None = None, latency_ms: float = 0.0
) -> LedgerRow:
    """The ledger row of a cache hit: no tokens, no cost, the layer that answered.

    `call_key` defaults to the running activity attempt's (outside an activity, pass one)."""
    return LedgerRow(
        call_key=call_key or attempt_key(f":{hit.layer}"),
        context=probe.context,
        workflow_id=probe.workflow_id,
        run_id=probe.run_id,
        provider="cache",
        model=hit.model,
        usage=Usage(),
        latency_ms=latency_ms,
        cost_usd=0.0,
        cache_layer=hit.layer,
        cache_key=hit.cached_key or probe.key,
        cache_entry=hit.entry or None,
    )
