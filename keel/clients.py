"""Connections to Temporal, PostgreSQL and Redis, built once per process from settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter

from keel.db import make_engine
from keel.quickdb import QuickDb, plain_dsn
from keel.settings import Settings
from keel.tracing import process_tracer_provider, temporal_interceptors


async def connect_temporal(
    settings: Settings, *, lazy: bool = False, interceptors: list[Interceptor] | None = None
) -> Client:
    """A Temporal client with the pydantic data converter every Keel process uses.

    `lazy` defers the connection to the first call, so the API can start (and report Temporal
    as unhealthy on /readyz) while Temporal is down. `interceptors` default to the tracing
    interceptor when the `OTEL_*` variables turn tracing on (`keel.tracing`); workers built on
    the client inherit them.
    """
    if interceptors is None:
        interceptors = temporal_interceptors(process_tracer_provider())
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        lazy=lazy,
        interceptors=interceptors,
    )


def connect_redis(settings: Settings) -> aioredis.Redis:
    """An async Redis client; connects lazily on first command."""
    return aioredis.Redis.from_url(
        settings.redis_dsn, decode_responses=False, socket_connect_timeout=2, socket_timeout=5
    )


@dataclass
class Clients:
    """The three connections a Keel process holds."""

    temporal: Client
    engine: AsyncEngine
    redis: aioredis.Redis

    @classmethod
    async def connect(cls, settings: Settings, *, lazy: bool = False) -> Clients:
        return cls(
            temporal=await connect_temporal(settings, lazy=lazy),
            engine=make_engine(settings.database_dsn),
            redis=connect_redis(settings),
        )

    @cached_property
    def quick(self) -> QuickDb:
        """Raw autocommit connections to the engine's database, for per-request statements.

        Their HNSW scans keep going until enough rows pass the query's filters (one tenant's
        semantic cache is a small part of the index), as `SET LOCAL` does on the engine's.
        """
        return QuickDb(plain_dsn(self.engine.url), options={"hnsw.iterative_scan": "relaxed_order"})

    async def close(self) -> None:
        if "quick" in self.__dict__:
            await self.quick.close()
        await self.engine.dispose()
        await self.redis.aclose()
