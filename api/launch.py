"""Starting a run for a tenant, and optionally waiting a while for its result."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pydantic import BaseModel, Field
from temporalio.client import WorkflowFailureError

from api.errors import run_failed
from keel.auth import Principal
from keel.clients import Clients
from keel.runs import ui_url
from keel.settings import Settings
from workflows.common import run_attributes


class RunStarted(BaseModel):
    """A run that was started and has not finished within the wait."""

    id: str
    status: str = "running"
    ui_url: str
    result_url: str = Field(description="Poll this for status, progress and result.")


def run_id(feature: str) -> str:
    return f"{feature}-{uuid.uuid4().hex}"


async def start(
    clients: Clients,
    config: Settings,
    principal: Principal,
    *,
    feature: str,
    workflow: str,
    arg: BaseModel,
    wait_seconds: float = 0.0,
    result_type: type[Any] | None = None,
) -> tuple[str, Any | None]:
    """Start `workflow` for the principal's tenant; return its id and, if it finished within
    `wait_seconds`, its result (else None).

    Raises:
        ApiError: the run failed within the wait; its own error type and message, the HTTP
            status its type calls for (`api.errors.FAILURE_STATUS`), and the run's id.
    """
    wid = run_id(feature)
    handle = await clients.temporal.start_workflow(
        workflow,
        arg,
        id=wid,
        task_queue=config.task_queue_cpu,
        search_attributes=run_attributes(principal.tenant, feature),
        result_type=result_type,
    )
    if wait_seconds <= 0:
        return wid, None
    try:
        return wid, await asyncio.wait_for(asyncio.shield(handle.result()), wait_seconds)
    except TimeoutError:
        return wid, None
    except WorkflowFailureError as exc:
        raise run_failed(exc, wid) from exc


def started(config: Settings, wid: str) -> RunStarted:
    return RunStarted(
        id=wid,
        ui_url=ui_url(config, wid, ""),
        result_url=f"/v1/runs/{wid}",
    )
