"""History scenario: PingWorkflow across the cpu and gpu queues."""

from __future__ import annotations

import uuid

from keel.clients import Clients
from keel.contracts.diagnostics import PingInput
from keel.settings import Settings
from workflows.diagnostics import PingWorkflow


async def scenario(clients: Clients, settings: Settings) -> str:
    workflow_id = f"history-ping-{uuid.uuid4().hex[:8]}"
    await clients.temporal.execute_workflow(
        PingWorkflow.run,
        PingInput(queues=[settings.task_queue_cpu, settings.task_queue_gpu]),
        id=workflow_id,
        task_queue=settings.task_queue_cpu,
    )
    return workflow_id
