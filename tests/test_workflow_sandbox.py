"""Finalisers of the activities' objects that run on a workflow thread import nothing into the
workflow sandbox.

redis-py's connection pool imports its metrics recorder (and through it OpenTelemetry) from
`__del__`. When the collector frees a pool on a workflow thread mid-activation, that import ran
inside the sandbox: the modules were loaded again there and Temporal warned "Module
redis.observability.recorder was imported after initial workflow load" (seen in CI, in
whichever test the collector happened to run). The workers' sandbox passes those libraries
through, so the finaliser uses the modules already loaded.
"""

from __future__ import annotations

import gc
import uuid
import warnings

import redis.asyncio as aioredis
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from keel.clients import Clients
from keel.settings import Settings
from tests.sandbox_probe import CollectGarbageWorkflow
from worker import workflow_runner

LATE_IMPORT = "was imported after initial workflow load"


async def _late_imports(
    clients: Clients, settings: Settings, runner: SandboxedWorkflowRunner
) -> list[str]:
    """Free a used Redis pool inside a workflow's activation; the sandbox's late imports."""
    queue = f"sandbox-{uuid.uuid4().hex[:10]}"
    worker = Worker(
        clients.temporal,
        task_queue=queue,
        workflows=[CollectGarbageWorkflow],
        workflow_runner=runner,
    )
    gc.disable()  # so that only the workflow's own collection frees the pool
    try:
        client = aioredis.Redis.from_url(settings.redis_dsn)
        assert await client.ping()
        # Closed as the workers close theirs: the pool still lists the connection.
        await client.aclose()
        pool = client.connection_pool
        pool.cycle = pool  # type: ignore[attr-defined]  # freed only by the cyclic collector
        del client, pool
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            async with worker:
                freed = await clients.temporal.execute_workflow(
                    CollectGarbageWorkflow.run, id=f"gc-{queue}", task_queue=queue
                )
    finally:
        gc.enable()
    assert freed > 0
    return [str(w.message) for w in seen if LATE_IMPORT in str(w.message)]


async def test_a_redis_pool_freed_on_a_workflow_thread_imports_nothing_into_the_sandbox(
    clients: Clients, settings: Settings
) -> None:
    assert await _late_imports(clients, settings, workflow_runner()) == []


async def test_the_default_sandbox_would_import_them_again(
    clients: Clients, settings: Settings
) -> None:
    """The same collection under Temporal's default sandbox: the warnings CI saw."""
    late = await _late_imports(clients, settings, SandboxedWorkflowRunner())
    assert any("redis.observability" in message for message in late), late
