"""Readiness checks of the three services Keel depends on, each bounded in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from pydantic import BaseModel
from sqlalchemy import text

from keel.clients import Clients

CHECK_TIMEOUT_S = 2.0


class PartHealth(BaseModel):
    name: str
    healthy: bool
    latency_ms: float
    error: str | None = None


class Readiness(BaseModel):
    ready: bool
    parts: list[PartHealth]


async def _timed(name: str, check: Awaitable[object]) -> PartHealth:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check, CHECK_TIMEOUT_S)
    except TimeoutError:
        error: str | None = f"no answer within {CHECK_TIMEOUT_S:.0f}s"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; report it by name
        error = f"{type(exc).__name__}: {exc}"[:300]
    else:
        error = None
    return PartHealth(
        name=name,
        healthy=error is None,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        error=error,
    )


async def _postgres(clients: Clients) -> None:
    async with clients.engine.connect() as conn:
        await conn.execute(text("select 1"))


async def readiness(clients: Clients) -> Readiness:
    """Check Temporal, PostgreSQL and Redis concurrently; name each one's state."""
    parts = await asyncio.gather(
        _timed("temporal", clients.temporal.service_client.check_health()),
        _timed("postgres", _postgres(clients)),
        _timed("redis", clients.redis.ping()),
    )
    return Readiness(ready=all(p.healthy for p in parts), parts=list(parts))
