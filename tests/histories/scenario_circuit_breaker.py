"""History scenario: a breaker started by a failure report, then asked for admission."""

from __future__ import annotations

import uuid

from keel.clients import Clients
from keel.contracts.gateway import CircuitOutcome
from keel.contracts.guards import CircuitConfig
from keel.settings import Settings
from workflows.circuit import CircuitBreakerWorkflow


async def scenario(clients: Clients, settings: Settings) -> str:
    workflow_id = f"history-circuit-{uuid.uuid4().hex[:8]}"
    handle = await clients.temporal.start_workflow(
        CircuitBreakerWorkflow.run,
        CircuitConfig(failure_threshold=1),
        id=workflow_id,
        task_queue=settings.task_queue_cpu,
        start_signal="report",
        start_signal_args=[CircuitOutcome(success=False)],
    )
    await handle.execute_update(CircuitBreakerWorkflow.acquire)  # open: refused
    return workflow_id
