"""History scenario: RagQueryWorkflow over a small seeded corpus, a cache miss end to end
(safety, answer cache, query processing, embed, vector + keyword search, fusion, rerank,
context, generation through the gateway, output check, answer-cache write)."""

from __future__ import annotations

import uuid

from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.gateway import CallContext
from keel.contracts.rag import RagQueryRequest
from keel.runs import gateway_config
from keel.settings import Settings
from tests.support.rag_corpus import seed
from workflows.rag import RagQueryWorkflow


async def scenario(clients: Clients, settings: Settings) -> str:
    tenant_id = await ensure_tenant(clients.engine, "history-rag")
    await seed(clients.engine, tenant_id)
    workflow_id = f"history-rag-{uuid.uuid4().hex[:8]}"
    await clients.temporal.execute_workflow(
        RagQueryWorkflow.run,
        RagQueryRequest(
            question="How many vacation days do new employees get?",
            context=CallContext(tenant="history-rag", tenant_id=str(tenant_id), feature="rag"),
            gateway=gateway_config(settings),
            rag=settings.rag,
        ),
        id=workflow_id,
        task_queue=settings.task_queue_cpu,
    )
    return workflow_id
