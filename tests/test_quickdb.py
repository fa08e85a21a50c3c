"""The API's raw connections: a broken connection is replaced without failing the request, and
more concurrent requests than connections wait their turn."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from keel.clients import Clients
from keel.quickdb import QuickDb, plain_dsn


async def test_a_connection_killed_by_the_server_is_replaced_transparently(
    clients: Clients,
) -> None:
    quick = QuickDb(plain_dsn(clients.engine.url), size=1)
    try:
        first = await quick.fetchone("SELECT pg_backend_pid()", {})
        assert first is not None
        async with clients.engine.connect() as conn:  # what a PostgreSQL restart does to it
            await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first[0]})
        second = await quick.fetchone("SELECT pg_backend_pid()", {})
        assert second is not None
        assert second[0] != first[0]
    finally:
        await quick.close()


async def test_concurrent_statements_share_a_bounded_set_of_connections(clients: Clients) -> None:
    quick = QuickDb(plain_dsn(clients.engine.url), size=2)
    try:
        rows = await asyncio.gather(
            *(quick.fetchone("SELECT pg_backend_pid(), %(n)s::int", {"n": n}) for n in range(12))
        )
        assert [row[1] for row in rows if row] == list(range(12))
        assert len({row[0] for row in rows if row}) <= 2
    finally:
        await quick.close()


async def test_a_statement_error_leaves_the_connection_usable(clients: Clients) -> None:
    quick = QuickDb(plain_dsn(clients.engine.url), size=1)
    try:
        before = await quick.fetchone("SELECT pg_backend_pid()", {})
        try:
            await quick.fetchone("SELECT 1 / %(zero)s::int", {"zero": 0})
        except Exception as exc:
            assert "division by zero" in str(exc)
        else:
            raise AssertionError("division by zero did not fail")
        assert await quick.fetchone("SELECT pg_backend_pid()", {}) == before
    finally:
        await quick.close()


async def test_session_options_apply_and_fetchall_returns_every_row(clients: Clients) -> None:
    # The API's semantic-cache lookups rely on HNSW's iterative scan being on for the session.
    quick = QuickDb(plain_dsn(clients.engine.url), options={"hnsw.iterative_scan": "relaxed_order"})
    try:
        await quick.fetchone("SELECT '[1,2,3]'::vector", {})  # loads pgvector in the session
        assert await quick.fetchone("SHOW hnsw.iterative_scan", {}) == ("relaxed_order",)
        rows = await quick.fetchall("SELECT g FROM generate_series(1, %(n)s) g", {"n": 5})
        assert rows == [(1,), (2,), (3,), (4,), (5,)]
        assert await quick.fetchall("SELECT 1 WHERE false", {}) == []
    finally:
        await quick.close()
