"""History scenario: ModelCallWorkflow answered by the offline provider (miss, then store)."""

from __future__ import annotations

import uuid

from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.gateway import CallContext, ModelCall, ModelCallRequest
from keel.contracts.llm import ChatMessage
from keel.runs import gateway_config
from keel.settings import Settings
from workflows.llm import ModelCallWorkflow


async def scenario(clients: Clients, settings: Settings) -> str:
    tenant_id = await ensure_tenant(clients.engine, "history")
    workflow_id = f"history-model-call-{uuid.uuid4().hex[:8]}"
    await clients.temporal.execute_workflow(
        ModelCallWorkflow.run,
        ModelCallRequest(
            call=ModelCall(
                messages=[ChatMessage(role="user", content="What is Keel?")], tier="cheap"
            ),
            context=CallContext(tenant="history", tenant_id=str(tenant_id), feature="history"),
            config=gateway_config(settings),
        ),
        id=workflow_id,
        task_queue=settings.task_queue_cpu,
    )
    return workflow_id
