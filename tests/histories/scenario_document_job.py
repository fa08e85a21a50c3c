"""History scenario: DocumentJobWorkflow over three documents, two at a time, on the offline
provider (whose replies are not the extractor's JSON: each document ends as a failed item)."""

from __future__ import annotations

import uuid

from agents.registry import role_spec
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.documents import DocumentFilter, DocumentJobRequest
from keel.contracts.gateway import CallContext
from keel.runs import gateway_config
from keel.settings import Settings
from tests.support.agents import seed_documents
from workflows.document_jobs import DocumentJobWorkflow


async def scenario(clients: Clients, settings: Settings) -> str:
    tenant_id = await ensure_tenant(clients.engine, "history")
    prefix = f"history-job-{uuid.uuid4().hex[:8]}/"
    await seed_documents(clients, tenant_id, prefix, count=3)
    # Child ids derive from the job's workflow id, and the replay test replays each history
    # under its file name: so the job is recorded under that name.
    workflow_id = "document_job"
    await clients.temporal.execute_workflow(
        DocumentJobWorkflow.run,
        DocumentJobRequest(
            context=CallContext(tenant="history", tenant_id=str(tenant_id), feature="history"),
            gateway=gateway_config(settings),
            role=role_spec("extractor"),
            filter=DocumentFilter(source_prefix=prefix),
            concurrency=2,
        ),
        id=workflow_id,
        task_queue=settings.task_queue_cpu,
    )
    return workflow_id
