"""A few raw psycopg connections for the statements a request makes on its hot path.

An answer-cache hit makes three statements (the API key lookup, the tenant's corpus
generation, the hit's ledger row), each a single indexed read or a one-row insert. Through
SQLAlchemy's async engine each costs ~0.6 ms here against ~0.15 ms for the database itself: a
pool checkout with a pre-ping, a transaction begun and rolled back, greenlet switches and
result processing. That was half of a cache hit's 5 ms budget. These statements need none of
it: each is its own transaction, so long-lived connections in autocommit mode, with the
statements prepared on first use, serve them directly.

A connection that breaks (PostgreSQL restarted) is dropped and the statement retried once on
a fresh one, so the first request after a restart succeeds as it does through the engine's
pre-ping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import psycopg
from sqlalchemy.engine import URL

Params = Mapping[str, Any]


def plain_dsn(url: URL) -> str:
    """The libpq form of an SQLAlchemy URL (`postgresql+psycopg://` → `postgresql://`)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class QuickDb:
    """Up to `size` autocommit connections, opened on demand and reused (last in, first out)."""

    def __init__(
        self, dsn: str, *, size: int = 4, options: Mapping[str, str] | None = None
    ) -> None:
        self._dsn = dsn
        self._size = size
        # Session settings of every connection (libpq's `options`: `-c name=value`).
        self._options = " ".join(f"-c {k}={v}" for k, v in (options or {}).items())
        self._idle: list[psycopg.AsyncConnection[tuple[Any, ...]]] = []
        self._open = 0
        self._freed = asyncio.Condition()

    async def fetchone(self, sql: str, params: Params) -> tuple[Any, ...] | None:
        """The first row of `sql` (psycopg's `%(name)s` placeholders), or None."""
        rows = await self._run(sql, params, many=False)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        """Every row of `sql` (psycopg's `%(name)s` placeholders)."""
        return await self._run(sql, params, many=True)

    async def _run(self, sql: str, params: Params, *, many: bool) -> list[tuple[Any, ...]]:
        for attempt in (1, 2):
            conn = await self._take()
            try:
                cursor = await conn.execute(sql, params, prepare=True)
                if not cursor.description:
                    rows: list[tuple[Any, ...]] = []
                elif many:
                    rows = await cursor.fetchall()
                else:
                    one = await cursor.fetchone()
                    rows = [one] if one is not None else []
            except psycopg.OperationalError:
                if conn.broken and attempt == 1:
                    await self._drop(conn)
                    continue  # the server went away since this connection's last use
                await self._give(conn)
                raise
            except Exception:
                await self._give(conn)
                raise
            except BaseException:  # cancelled mid-statement: the connection's state is unknown
                await self._drop(conn)
                raise
            await self._give(conn)
            return rows
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            self._open -= 1
            await conn.close()

    async def _take(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        async with self._freed:
            while not self._idle and self._open >= self._size:
                await self._freed.wait()
            if self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
                self._open -= 1
            self._open += 1
        try:
            return await psycopg.AsyncConnection.connect(
                self._dsn, autocommit=True, options=self._options or None
            )
        except BaseException:
            await self._drop(None)
            raise

    async def _give(self, conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
        async with self._freed:
            if conn.broken or conn.closed:
                self._open -= 1
            else:
                self._idle.append(conn)
            self._freed.notify()

    async def _drop(self, conn: psycopg.AsyncConnection[tuple[Any, ...]] | None) -> None:
        if conn is not None:
            await conn.close()
        async with self._freed:
            self._open -= 1
            self._freed.notify()
