"""History scenario: one IngestBatchWorkflow (parse -> chunk -> embed -> upsert)."""

from __future__ import annotations

from keel.clients import Clients
from keel.settings import Settings
from tests.support.ingest_corpus import mixed_corpus, start_job


async def scenario(clients: Clients, settings: Settings) -> str:
    job_id = await start_job(clients, settings, "history", mixed_corpus(3, seed=2))
    handle = clients.temporal.get_workflow_handle(job_id)
    await handle.result()
    history = await handle.fetch_history()
    [child] = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in history.events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]
    return child
