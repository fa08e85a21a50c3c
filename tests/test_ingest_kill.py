"""Crash safety: SIGKILL the worker processes in the middle of a job, start new ones, and the
job still stores every chunk exactly once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.ingest import IngestResult
from keel.settings import Settings
from tests.support.ingest_corpus import expected_chunks, long_text, mixed_corpus, start_job
from tests.support.worker_process import WorkerProcess
from tests.test_ingest import rows, scalar

pytestmark = pytest.mark.timeout(240)


async def _progress(clients: Clients, job_id: str) -> dict[str, Any]:
    try:
        answer = await clients.temporal.get_workflow_handle(job_id).query(
            "progress", rpc_timeout=timedelta(seconds=2)
        )
    except RPCError:
        return {}
    return answer if isinstance(answer, dict) else {}


async def _interruptions(clients: Clients, job_id: str) -> int:
    """Activity attempts after the first, and workflow tasks that timed out, in the job."""
    parent = await clients.temporal.get_workflow_handle(job_id).fetch_history()
    ids = [job_id] + [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in parent.events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]
    count = 0
    for wid in ids:
        history = await clients.temporal.get_workflow_handle(wid).fetch_history()
        for event in history.events:
            if event.HasField("activity_task_started_event_attributes"):
                count += event.activity_task_started_event_attributes.attempt > 1
            count += event.HasField("workflow_task_timed_out_event_attributes")
    return count


async def test_job_survives_its_workers_being_killed(
    clients: Clients, settings: Settings, tmp_path: Path
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    files = mixed_corpus(150, seed=21)
    for k in range(4):  # a few multi-chunk documents, so embedding takes a while
        files[f"long/manual-{k}.txt"] = long_text(900, seed=k).encode()
    per_source = expected_chunks(files)
    log = tmp_path / "workers.log"
    first = [WorkerProcess(settings, q, log).start() for q in ("cpu", "gpu")]
    second: list[WorkerProcess] = []
    try:
        job_id = await start_job(
            clients,
            settings,
            tenant,
            files,
            batch_files=8,
            max_concurrent_batches=2,
            heartbeat_seconds=3,
        )
        progress: dict[str, Any] = {}
        for _ in range(600):
            progress = await _progress(clients, job_id)
            if progress.get("batches_done", 0) >= 3:
                break
            await asyncio.sleep(0.1)
        assert progress.get("batches_done", 0) >= 3, progress
        for worker in first:
            worker.kill()
        described = await clients.temporal.get_workflow_handle(job_id).describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
        assert progress["files_done"] < progress["files_total"] == len(files)

        second = [WorkerProcess(settings, q, log).start() for q in ("cpu", "gpu")]
        result: IngestResult = await asyncio.wait_for(
            clients.temporal.get_workflow_handle(job_id, result_type=IngestResult).result(),
            timeout=180,
        )
    finally:
        for worker in first + second:
            worker.stop()

    assert result.failures == []
    assert (result.documents_stored, result.chunks_written) == (
        len(per_source),
        sum(per_source.values()),
    )
    tid = await ensure_tenant(clients.engine, tenant)
    stored = await rows(
        clients,
        "select d.source, count(c.id), count(distinct c.position), min(c.position), "
        "max(c.position) from documents d join chunks c on c.document_id = d.id "
        "where d.tenant_id = :t group by 1",
        t=tid,
    )
    # Every document, each with exactly its chunks: none missing, none twice.
    assert {s: n for s, n, *_ in stored} == per_source
    assert all(n == distinct == hi + 1 and lo == 0 for _, n, distinct, lo, hi in stored)
    assert (
        await scalar(
            clients,
            "select count(*) from chunks c where c.tenant_id = :t and not exists "
            "(select 1 from chunk_windows w where w.chunk_id = c.id)",
            t=tid,
        )
        == 0
    )
    assert await _interruptions(clients, job_id) >= 1, log.read_text()[-3000:]
