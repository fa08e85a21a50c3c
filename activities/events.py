"""Run events: what a durable run is doing right now, as a Redis stream per run.

The durable result stays in the run's history; this stream is a view of it that may be lost
(Redis down, or expired after a day) and re-joined (a client reconnecting with the id of the
last event it saw gets everything after it). Activities write the pieces of an answer while
the provider streams them (`token` events, with the attempt number: a retried attempt starts
its answer again); `GET /v1/runs/{id}/events` adds the run's progress and its end.

Why Redis streams and not workflow history: tokens arrive every few milliseconds and must
not cost a history event each (a 500-token answer would be 1,000 events and bloat every
replay), and the SDK offers no stream out of a running workflow. A stream keeps order, gives
every entry an id to resume from, and is capped (`MAXLEN`) and expired so it never grows.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from activities.gateway_steps import REDIS_DOWN
from keel.telemetry import get_logger

MAX_EVENTS = 5_000  # per run; older ones are trimmed
TTL_SECONDS = 24 * 3600

log = get_logger("keel.events")


def events_key(workflow_id: str) -> str:
    return f"keel:events:{workflow_id}"


async def publish(
    redis: aioredis.Redis, workflow_id: str, kind: str, data: dict[str, Any]
) -> str | None:
    """Append one event to the run's stream; its id, or None when Redis is unreachable (the
    stream is a view: the run goes on without it)."""
    key = events_key(workflow_id)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.xadd(
                key,
                {"kind": kind, "data": json.dumps(data, ensure_ascii=False)},
                maxlen=MAX_EVENTS,
                approximate=True,
            )
            pipe.expire(key, TTL_SECONDS)
            added, _ = await pipe.execute()
    except REDIS_DOWN as exc:
        log.warning("run event not published, redis is unreachable: %s", exc)
        return None
    return added.decode() if isinstance(added, bytes) else str(added)


async def read_events(
    redis: aioredis.Redis, workflow_id: str, after: str, *, block_ms: int
) -> list[tuple[str, str, dict[str, Any]]]:
    """Events after id `after` ("0": from the start), waiting up to `block_ms` for one."""
    answer: Any = await redis.xread({events_key(workflow_id): after}, count=500, block=block_ms)
    events: list[tuple[str, str, dict[str, Any]]] = []
    for _, entries in answer or []:
        for entry_id, fields in entries:
            ident = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            kind = fields.get(b"kind", b"").decode()
            events.append((ident, kind, json.loads(fields.get(b"data", b"{}"))))
    return events
