"""History scenario: DocumentAgentWorkflow on one document (read, extract, repair, store)."""

from __future__ import annotations

import uuid

from agents.registry import role_spec
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.documents import DocumentTask
from keel.contracts.gateway import CallContext
from keel.runs import gateway_config
from keel.settings import Settings
from tests.support.agents import seed_documents
from workflows.document_jobs import DocumentAgentWorkflow


async def scenario(clients: Clients, settings: Settings) -> str:
    tenant_id = await ensure_tenant(clients.engine, "history")
    [document_id] = await seed_documents(
        clients, tenant_id, f"history-doc-{uuid.uuid4().hex[:8]}/", count=1
    )
    workflow_id = f"history-document-agent-{uuid.uuid4().hex[:8]}"
    await clients.temporal.execute_workflow(
        DocumentAgentWorkflow.run,
        DocumentTask(
            job_id=workflow_id,
            document_id=document_id,
            context=CallContext(tenant="history", tenant_id=str(tenant_id), feature="history"),
            gateway=gateway_config(settings),
            role=role_spec("extractor"),
        ),
        id=workflow_id,
        task_queue=settings.task_queue_cpu,
    )
    return workflow_id
