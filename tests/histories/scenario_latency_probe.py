"""History scenario: LatencyProbeWorkflow with two plain and two local activities."""

from __future__ import annotations

import uuid

from keel.clients import Clients
from keel.contracts.diagnostics import LatencyProbeInput
from keel.settings import Settings
from workflows.diagnostics import LatencyProbeWorkflow


async def scenario(clients: Clients, settings: Settings) -> str:
    workflow_id = f"history-latency-probe-{uuid.uuid4().hex[:8]}"
    await clients.temporal.execute_workflow(
        LatencyProbeWorkflow.run,
        LatencyProbeInput(kind="activity", steps=2),
        id=workflow_id,
        task_queue=settings.task_queue_cpu,
    )
    return workflow_id
