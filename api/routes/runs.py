"""Generic run routes: list, inspect, signal and cancel a tenant's workflow runs.

A run belongs to the tenant named in its `KeelTenant` search attribute. Another tenant's run
answers 404, exactly like a run that does not exist.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import ValidationError
from sqlalchemy import text
from temporalio.client import (
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ClientsDep, PrincipalDep, SettingsDep
from api.errors import ApiError, ErrorResponse, failure_body, not_found
from keel.clients import Clients
from keel.contracts.escalation import DECISION_INPUTS, ESCALATION_WORKFLOWS
from keel.contracts.runs import (
    CancelAccepted,
    RunDetail,
    RunList,
    RunStatus,
    RunSummary,
    SignalAccepted,
)
from keel.runs import ui_url
from keel.settings import Settings
from workflows.common import COST_USD, FEATURE, TENANT

router = APIRouter(prefix="/v1/runs", tags=["runs"])

RunId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")]
SignalName = Annotated[str, Path(pattern=r"^[a-z][a-z_]{0,39}$")]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing, malformed or unknown API key"},
    404: {"model": ErrorResponse, "description": "No such run for this tenant"},
    409: {
        "model": ErrorResponse,
        "description": "The run is already closed, or refused the decision (none pending)",
    },
}
QUERY_TIMEOUT = timedelta(seconds=2)
UPDATE_TIMEOUT = timedelta(seconds=20)

_STATUS: dict[WorkflowExecutionStatus, RunStatus] = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "canceled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued_as_new",
}


def summarize(execution: WorkflowExecution, config: Settings) -> RunSummary:
    attrs = execution.typed_search_attributes
    status = _STATUS.get(execution.status or WorkflowExecutionStatus.RUNNING, "running")
    return RunSummary(
        id=execution.id,
        run_id=execution.run_id,
        kind=execution.workflow_type,
        feature=attrs.get(FEATURE) or "",
        status=status,
        started_at=execution.start_time,
        closed_at=execution.close_time,
        cost_usd=attrs.get(COST_USD) or 0.0,
        ui_url=ui_url(config, execution.id, execution.run_id),
    )


async def owned_run(
    clients: Clients, tenant: str, run_id: str
) -> tuple[WorkflowHandle[Any, Any], WorkflowExecutionDescription]:
    """The run's handle and description, or 404 if it is not this tenant's."""
    handle = clients.temporal.get_workflow_handle(run_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise not_found("run", run_id) from exc
        raise
    if description.typed_search_attributes.get(TENANT) != tenant:
        raise not_found("run", run_id)
    return handle, description


@router.get("", response_model=RunList, responses=ERRORS)
async def list_runs(
    principal: PrincipalDep,
    clients: ClientsDep,
    config: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    status: Annotated[RunStatus | None, Query()] = None,
    feature: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_-]{0,39}$")] = None,
) -> RunList:
    """The caller's runs, newest first."""
    clauses = [f'KeelTenant = "{principal.tenant}"']  # tenant names are validated: no quoting
    if status is not None:
        reverse = {v: k for k, v in _STATUS.items()}
        clauses.append(f"ExecutionStatus = '{reverse[status].name.title().replace('_', '')}'")
    if feature is not None:
        clauses.append(f'KeelFeature = "{feature}"')
    runs: list[RunSummary] = []
    async for execution in clients.temporal.list_workflows(" AND ".join(clauses), limit=limit):
        runs.append(summarize(execution, config))
    return RunList(runs=runs)


@router.get("/{run_id}", response_model=RunDetail, responses=ERRORS)
async def get_run(
    run_id: RunId, principal: PrincipalDep, clients: ClientsDep, config: SettingsDep
) -> RunDetail:
    """Status, progress (while running), result or error, cost, and the Temporal UI link.

    A call the API answered itself (`model-call-direct-…`, `rag-hit-…`) has no workflow: its
    detail comes from its ledger rows (kind `served-by-api`, no result kept, no UI link).
    """
    if run_id.startswith(SERVED_BY_API):
        served = await served_by_api(clients, principal.tenant_id, run_id)
        if served is None:
            raise not_found("run", run_id)
        return served
    handle, description = await owned_run(clients, principal.tenant, run_id)
    detail = RunDetail(**summarize(description, config).model_dump())
    if detail.status == "running":
        detail.progress = await progress_of(handle)
    elif detail.status == "completed":
        detail.result = await handle.result(follow_runs=False)
    elif detail.status in ("failed", "canceled", "terminated", "timed_out"):
        try:
            await handle.result(follow_runs=False)
        except WorkflowFailureError as exc:
            detail.error = failure_body(exc)
    return detail


SERVED_BY_API = ("model-call-direct-", "rag-hit-")


async def served_by_api(clients: Clients, tenant_id: uuid.UUID, run_id: str) -> RunDetail | None:
    """The detail of a call the API served without a workflow, from its ledger rows."""
    async with clients.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT min(feature), min(created_at), max(created_at), "
                    "coalesce(sum(cost_usd), 0), count(*) FROM llm_calls "
                    "WHERE tenant_id = :t AND workflow_id = :w"
                ),
                {"t": tenant_id, "w": run_id},
            )
        ).one()
    if not row[4]:
        return None
    return RunDetail(
        id=run_id,
        run_id="",
        kind="served-by-api",
        feature=row[0] or "",
        status="completed",
        started_at=row[1],
        closed_at=row[2],
        cost_usd=float(row[3]),
        ui_url="",
    )


async def progress_of(handle: WorkflowHandle[Any, Any]) -> dict[str, Any] | None:
    """The workflow's `progress` query answer; None if it has none or no worker answers soon."""
    try:
        answer = await handle.query("progress", rpc_timeout=QUERY_TIMEOUT)
    except (
        TimeoutError,
        RPCError,
        FailureError,
        WorkflowQueryFailedError,
        WorkflowQueryRejectedError,
    ):
        return None
    return answer if isinstance(answer, dict) else {"value": answer}


@router.post(
    "/{run_id}/signals/{name}",
    response_model=SignalAccepted,
    status_code=202,
    responses={
        **ERRORS,
        503: {"model": ErrorResponse, "description": "No worker took the decision in time"},
    },
)
async def signal_run(
    run_id: RunId,
    name: SignalName,
    principal: PrincipalDep,
    clients: ClientsDep,
    payload: Annotated[dict[str, Any] | None, Body()] = None,
) -> SignalAccepted:
    """Send signal `name` with a JSON object body.

    To runs that escalate to a person (agent teams), `approve`, `reject`, `edit` and
    `take_over` are sent as validated updates instead: 409 when no escalation is pending.
    """
    handle, description = await owned_run(clients, principal.tenant, run_id)
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise _closed(run_id, description)
    if name in DECISION_INPUTS and description.workflow_type in ESCALATION_WORKFLOWS:
        await _decide(handle, run_id, name, payload)
        return SignalAccepted(id=run_id, signal=name)
    args = [payload] if payload is not None else []
    await handle.signal(name, *args)
    return SignalAccepted(id=run_id, signal=name)


async def _decide(
    handle: WorkflowHandle[Any, Any], run_id: str, name: str, payload: dict[str, Any] | None
) -> None:
    """An escalation decision, sent as a Temporal update: the workflow's validator refuses
    one that nothing waits for, and the caller hears it now (409) instead of a signal that
    is silently ignored."""
    try:
        decision = DECISION_INPUTS[name].model_validate(payload or {})
    except ValidationError as exc:
        problems = [
            {"field": ".".join(map(str, e["loc"])), "problem": e["msg"]} for e in exc.errors()
        ]
        raise ApiError(
            422, "InvalidInput", f"invalid {name} decision", details={"problems": problems}
        ) from exc
    try:
        await handle.execute_update(name, decision, rpc_timeout=UPDATE_TIMEOUT)
    except WorkflowUpdateFailedError as exc:
        body = failure_body(exc.cause)
        raise ApiError(409, body["type"], body["message"], details={"id": run_id}) from exc
    except (WorkflowUpdateRPCTimeoutOrCancelledError, RPCError) as exc:
        if isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
            # It closed between our look and the update: the same answer as a closed run.
            raise ApiError(409, "RunClosed", f"run {run_id!r} is already closed") from exc
        raise ApiError(
            503,
            "WorkerUnavailable",
            f"no worker answered the {name} decision in time; retry shortly",
            details={"id": run_id},
        ) from exc


@router.post("/{run_id}/cancel", response_model=CancelAccepted, status_code=202, responses=ERRORS)
async def cancel_run(run_id: RunId, principal: PrincipalDep, clients: ClientsDep) -> CancelAccepted:
    """Ask the run to stop; it cleans up and ends as `canceled`."""
    handle, description = await owned_run(clients, principal.tenant, run_id)
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise _closed(run_id, description)
    await handle.cancel()
    return CancelAccepted(id=run_id)


def _closed(run_id: str, description: WorkflowExecutionDescription) -> ApiError:
    status = _STATUS.get(description.status or WorkflowExecutionStatus.RUNNING, "running")
    return ApiError(
        409, "RunClosed", f"run {run_id!r} is already {status}", details={"status": status}
    )
