"""Fault: PostgreSQL restarts in the middle of an ingestion job. The job resumes when it is
back and stores every chunk exactly once.

The test runs a PostgreSQL of its own (the session's stays up for every other test), stops it
with a fast shutdown (open transactions are aborted, as on a failover) once a few batches are
stored, and starts it again on the same data directory a few seconds later. Temporal, Redis
and the workers are real; the workers run in this process against the test's PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from keel.app.devstack import DevStack
from keel.app.processes import Service, free_port
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.ingest import IngestResult
from keel.db import make_engine, migrate
from keel.settings import Settings
from tests.conftest import running_workers
from tests.support.ingest_corpus import expected_chunks, long_text, mixed_corpus, start_job
from tests.test_ingest_kill import _interruptions, _progress

pytestmark = pytest.mark.timeout(300)
OUTAGE_SECONDS = 12.0


@pytest.fixture
async def own_postgres(
    tmp_path: Path, clients: Clients, settings: Settings
) -> AsyncIterator[tuple[list[Service], DevStack, Settings, Clients]]:
    own = settings.model_copy(
        update={
            "data_dir": tmp_path,
            "ports": settings.ports.model_copy(update={"postgres": free_port()}),
        }
    )
    stack = DevStack(own, headless=True)
    service = stack._postgres()
    service.start(own.host)
    service.wait_ready(30)
    stack._create_database()
    await asyncio.to_thread(migrate, own.database_dsn)
    engine = make_engine(own.database_dsn)
    running = [service]  # the test replaces it when it restarts PostgreSQL
    try:
        yield (
            running,
            stack,
            own,
            Clients(temporal=clients.temporal, engine=engine, redis=clients.redis),
        )
    finally:
        await engine.dispose()
        running[-1].stop()


async def test_ingestion_resumes_after_postgres_restarts(
    own_postgres: tuple[list[Service], DevStack, Settings, Clients],
) -> None:
    running, stack, own, clients = own_postgres
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    files = mixed_corpus(120, seed=31)
    for k in range(4):
        files[f"long/manual-{k}.txt"] = long_text(900, seed=40 + k).encode()
    per_source = expected_chunks(files)

    async with running_workers(clients, own):
        job_id = await start_job(
            clients, own, tenant, files, batch_files=8, max_concurrent_batches=2
        )
        progress: dict[str, Any] = {}
        for _ in range(600):
            progress = await _progress(clients, job_id)
            if progress.get("batches_done", 0) >= 2:
                break
            await asyncio.sleep(0.1)
        assert progress.get("batches_done", 0) >= 2 and progress["files_done"] < len(files)

        await asyncio.to_thread(running[0].stop)  # fast shutdown: in-flight transactions abort
        down_at = time.monotonic()
        await asyncio.sleep(OUTAGE_SECONDS)
        # The same data directory, prepared again as `keel up` would (owner, permissions).
        running.append(stack._postgres())
        running[-1].start(own.host)
        await asyncio.to_thread(running[-1].wait_ready, 30)
        outage = time.monotonic() - down_at

        result: IngestResult = await asyncio.wait_for(
            clients.temporal.get_workflow_handle(job_id, result_type=IngestResult).result(),
            timeout=240,
        )

    assert outage >= OUTAGE_SECONDS
    assert result.failures == []
    assert (result.documents_stored, result.chunks_written) == (
        len(per_source),
        sum(per_source.values()),
    )
    tid = await ensure_tenant(clients.engine, tenant)
    async with clients.engine.connect() as conn:
        stored = (
            await conn.execute(
                text(
                    "select d.source, count(c.id), count(distinct c.position), min(c.position), "
                    "max(c.position) from documents d join chunks c on c.document_id = d.id "
                    "where d.tenant_id = :t group by 1"
                ),
                {"t": tid},
            )
        ).all()
        without_windows = (
            await conn.execute(
                text(
                    "select count(*) from chunks c where c.tenant_id = :t and not exists "
                    "(select 1 from chunk_windows w where w.chunk_id = c.id)"
                ),
                {"t": tid},
            )
        ).scalar_one()
    # Every document with exactly its chunks: none lost, none stored twice.
    assert {s: n for s, n, *_ in stored} == per_source
    assert all(n == distinct == hi + 1 and lo == 0 for _, n, distinct, lo, hi in stored)
    assert without_windows == 0
    assert await _interruptions(clients, job_id) >= 1  # the outage was felt, and retried
