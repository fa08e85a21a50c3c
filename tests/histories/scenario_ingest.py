"""History scenario: IngestWorkflow over two batches, one of its files malformed."""

from __future__ import annotations

from keel.clients import Clients
from keel.contracts.ingest import IngestResult
from keel.settings import Settings
from tests.support.ingest_corpus import mixed_corpus, start_job


async def scenario(clients: Clients, settings: Settings) -> str:
    files = mixed_corpus(5, seed=1)
    files["broken.pdf"] = b"%PDF-1.4\nnot really a pdf"
    job_id = await start_job(
        clients, settings, "history", files, batch_files=3, max_concurrent_batches=2
    )
    result = await clients.temporal.get_workflow_handle(job_id, result_type=IngestResult).result()
    assert (result.batches, result.files_failed) == (2, 1), result
    return job_id
