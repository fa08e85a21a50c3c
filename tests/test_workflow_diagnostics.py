"""Workflows on the real dev server: one activity per queue, and the three step kinds."""

from __future__ import annotations

import uuid

import pytest
from temporalio.worker import Worker

from keel.clients import Clients
from keel.contracts.diagnostics import LatencyProbeInput, LatencyProbeResult, PingInput, PingResult
from keel.settings import Settings
from worker import build_worker
from workflows.diagnostics import LatencyProbeWorkflow, PingWorkflow


async def test_ping_runs_an_activity_on_each_queue(
    clients: Clients, settings: Settings, workers: list[Worker]
) -> None:
    result = await clients.temporal.execute_workflow(
        PingWorkflow.run,
        PingInput(queues=[settings.task_queue_cpu, settings.task_queue_gpu]),
        id=f"ping-{uuid.uuid4()}",
        task_queue=settings.task_queue_cpu,
    )
    assert isinstance(result, PingResult)
    assert [w.queue for w in result.workers] == [settings.task_queue_cpu, settings.task_queue_gpu]
    assert {w.device for w in result.workers} <= {"cpu", "cuda"}


@pytest.mark.parametrize("kind", ["activity", "local_activity", "inline"])
async def test_step_kinds_compute_the_same(
    clients: Clients, settings: Settings, workers: list[Worker], kind: str
) -> None:
    result = await clients.temporal.execute_workflow(
        LatencyProbeWorkflow.run,
        LatencyProbeInput(kind=kind, steps=5),
        id=f"probe-{uuid.uuid4()}",
        task_queue=settings.task_queue_cpu,
    )
    assert result == LatencyProbeResult(
        kind=kind, steps=5, checksum=sum(s * 31 % 7 for s in range(5))
    )


async def test_time_skipping_server_runs_keel_workflows(
    time_skipping: object, clients: Clients, settings: Settings
) -> None:
    from temporalio.testing import WorkflowEnvironment

    assert isinstance(time_skipping, WorkflowEnvironment)
    worker = build_worker(time_skipping.client, "cpu", clients, settings)
    async with worker:
        result = await time_skipping.client.execute_workflow(
            LatencyProbeWorkflow.run,
            LatencyProbeInput(kind="activity", steps=2),
            id=f"probe-ts-{uuid.uuid4()}",
            task_queue=settings.task_queue_cpu,
        )
    assert result.checksum == 0 + 31 % 7
