"""`api.launch.start`: a run that fails while the caller waits answers with its own typed
error, not 202 "running" (real Temporal; a workflow that fails the way Keel's do)."""

from __future__ import annotations

import uuid

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from api import launch
from api.errors import ApiError
from keel.auth import Principal
from keel.clients import Clients
from keel.settings import Settings


class Order(BaseModel):
    pallets: int


@workflow.defn(name="RefusingWorkflow")
class RefusingWorkflow:
    @workflow.run
    async def run(self, order: Order) -> str:
        if order.pallets < 0:
            raise ApplicationError("pallets must be >= 0", type="InvalidInput", non_retryable=True)
        return f"{order.pallets} pallets"


def _principal() -> Principal:
    return Principal(
        tenant_id=uuid.uuid4(),
        tenant="launch-test",
        key_id=uuid.uuid4(),
        tokens_per_minute=None,
        tokens_per_day=None,
    )


async def test_a_run_that_fails_within_the_wait_raises_its_typed_error(
    clients: Clients, settings: Settings
) -> None:
    queue = f"launch-{uuid.uuid4().hex[:8]}"
    config = settings.model_copy(update={"task_queue_cpu": queue})
    # Unsandboxed: the sandbox would re-import this module, and with it the API's FastAPI.
    async with Worker(
        clients.temporal,
        task_queue=queue,
        workflows=[RefusingWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        wid, result = await launch.start(
            clients,
            config,
            _principal(),
            feature="launch",
            workflow="RefusingWorkflow",
            arg=Order(pallets=3),
            wait_seconds=10,
            result_type=str,
        )
        assert result == "3 pallets"

        with pytest.raises(ApiError) as failed:
            await launch.start(
                clients,
                config,
                _principal(),
                feature="launch",
                workflow="RefusingWorkflow",
                arg=Order(pallets=-1),
                wait_seconds=10,
                result_type=str,
            )
    assert failed.value.status == 422
    assert failed.value.type == "InvalidInput"
    assert failed.value.message == "pallets must be >= 0"
    assert failed.value.details["id"].startswith("launch-")
    assert failed.value.details["result_url"] == f"/v1/runs/{failed.value.details['id']}"
