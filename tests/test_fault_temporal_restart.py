"""Fault: the Temporal server restarts while an ingestion job runs. The job continues from its
history when the server is back, and stores every chunk exactly once.

The test runs a Temporal dev server of its own (SQLite file on disk, as `keel up` runs it;
the session's server stays up for every other test), stops it once a few batches are done,
and starts it again on the same database file. The workers and the client in this process
are the ones that were connected before: they reconnect by themselves.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from keel.app.devstack import DevStack
from keel.app.processes import Service, free_port
from keel.clients import Clients, connect_temporal
from keel.contracts.ingest import IngestResult
from keel.settings import Settings
from tests.conftest import running_workers
from tests.support.ingest_corpus import expected, long_text, mixed_corpus, start_job
from tests.test_ingest_kill import _progress

pytestmark = pytest.mark.timeout(300)
OUTAGE_SECONDS = 5.0


@pytest.fixture
async def own_temporal(
    tmp_path: Path, clients: Clients, settings: Settings
) -> AsyncIterator[tuple[Service, Settings, Clients]]:
    own = settings.model_copy(
        update={
            "data_dir": tmp_path,
            "ports": settings.ports.model_copy(
                update={"temporal": free_port(), "temporal_ui": free_port()}
            ),
        }
    )
    service = DevStack(own, headless=True)._temporal()
    service.start(own.host)
    await asyncio.to_thread(service.wait_ready, 60)
    temporal = await connect_temporal(own)
    try:
        yield service, own, Clients(temporal=temporal, engine=clients.engine, redis=clients.redis)
    finally:
        service.stop()


async def test_running_jobs_continue_after_temporal_restarts(
    own_temporal: tuple[Service, Settings, Clients],
) -> None:
    service, own, clients = own_temporal
    files = mixed_corpus(100, seed=51)
    for k in range(3):
        files[f"long/manual-{k}.txt"] = long_text(900, seed=60 + k).encode()
    documents, chunks = expected(files)

    async with running_workers(clients, own):
        job_id = await start_job(
            clients,
            own,
            f"t-{uuid.uuid4().hex[:12]}",
            files,
            batch_files=8,
            max_concurrent_batches=2,
        )
        progress: dict[str, Any] = {}
        for _ in range(600):
            progress = await _progress(clients, job_id)
            if progress.get("batches_done", 0) >= 2:
                break
            await asyncio.sleep(0.1)
        assert progress.get("batches_done", 0) >= 2 and progress["files_done"] < len(files)

        handle = clients.temporal.get_workflow_handle(job_id, result_type=IngestResult)
        run_before = (await handle.describe()).run_id
        await asyncio.to_thread(service.stop)
        await asyncio.sleep(OUTAGE_SECONDS)
        service.start(own.host)
        await asyncio.to_thread(service.wait_ready, 60)

        result = await asyncio.wait_for(handle.result(), timeout=240)
        described = await handle.describe()

    assert described.status == WorkflowExecutionStatus.COMPLETED
    assert described.run_id == run_before  # the same run went on: nothing started over
    assert result.failures == []
    assert (result.documents_stored, result.chunks_written) == (documents, chunks)
