"""Agent runs and document jobs: start them, read their transcripts and partial results.

Progress, escalation decisions (`/v1/runs/{id}/signals/approve|reject|edit|take_over`) and
cancellation go through the generic run routes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import text

from agents.registry import TEAMS, UnknownRole, resolve_team, role_spec
from api import launch
from api.deps import ClientsDep, PrincipalDep, SettingsDep
from api.errors import ApiError, ErrorResponse
from api.ratelimit import enforce_token_limits
from api.routes.runs import owned_run
from api.strict import StrictBody
from keel.auth import Principal
from keel.contracts.agents import (
    AgentLimits,
    AgentRunRequest,
    AgentRunResult,
    TeamDecl,
    ToolConfig,
    TranscriptEntry,
)
from keel.contracts.documents import (
    DocumentFilter,
    DocumentJobRequest,
    DocumentJobResult,
    StoredDocumentResult,
)
from keel.contracts.guards import RunBudget
from keel.runs import call_context, gateway_config
from keel.settings import Settings

router = APIRouter(tags=["agents"])

Feature = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
RunId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing, malformed or unknown API key"},
    404: {"model": ErrorResponse, "description": "No such run for this tenant"},
    429: {"model": ErrorResponse, "description": "A token limit of this API key is exhausted"},
}


class AgentRunBody(StrictBody):
    """`POST /v1/agent-runs`."""

    task: str = Field(min_length=1, max_length=8000)
    team: str | TeamDecl = Field(
        default="", description="A declared team's name (empty: the default), or a declaration."
    )
    limits: AgentLimits | None = Field(default=None, description="Replaces the team's limits.")
    budget: RunBudget = Field(default_factory=RunBudget)
    feature: Feature = "agents"


class DocumentJobBody(StrictBody):
    """`POST /v1/document-jobs`: run one role (default: the extractor) over each document."""

    role: str = "extractor"
    instructions: str = Field(default="", max_length=4000)
    filter: DocumentFilter = Field(default_factory=DocumentFilter)
    max_documents: int = Field(default=1000, ge=1, le=100_000)
    concurrency: int | None = Field(default=None, ge=1, le=64)
    budget: RunBudget = Field(
        default_factory=RunBudget, description="Per document (each is its own run)."
    )
    feature: Feature = "document-job"


class Transcript(BaseModel):
    id: str
    entries: list[TranscriptEntry]


class DocumentResults(BaseModel):
    id: str
    results: list[StoredDocumentResult]


def agent_request(body: AgentRunBody, config: Settings, principal: Principal) -> AgentRunRequest:
    """The workflow input for a request: the team resolved and every setting frozen in."""
    name = (body.team or config.agents.default_team) if isinstance(body.team, str) else ""
    decl = body.team if isinstance(body.team, TeamDecl) else TEAMS.get(name)
    if decl is None:
        raise ApiError(
            422,
            "UnknownTeam",
            f"unknown team {name!r}; declared teams: {sorted(TEAMS)}",
            details={"teams": sorted(TEAMS)},
        )
    limits = body.limits or decl.limits
    if body.limits is None and isinstance(body.team, str):
        # A declared team takes this deployment's escalation defaults; a team posted with
        # the request, or explicit limits, say what they mean.
        limits = limits.model_copy(
            update={
                "escalation_timeout_seconds": config.agents.escalation_timeout_seconds,
                "on_escalation_timeout": config.agents.on_escalation_timeout,
            }
        )
    try:
        team = resolve_team(decl, limits)
    except (UnknownRole, ValueError) as exc:
        raise ApiError(422, "InvalidTeam", str(exc)) from exc
    return AgentRunRequest(
        task=body.task,
        team=team,
        context=call_context(principal, body.feature, body.budget),
        gateway=gateway_config(config),
        rag=config.rag,
        tools=ToolConfig(
            http_allow_hosts=list(config.agents.http_allow_hosts),
            http_private_hosts=list(config.agents.http_private_hosts),
            http_timeout_seconds=config.agents.http_timeout_seconds,
            rag_task_queue=config.agents.rag_task_queue,
        ),
    )


@router.post("/v1/agent-runs", response_model=launch.RunStarted, status_code=202, responses=ERRORS)
async def create_agent_run(
    body: AgentRunBody,
    principal: Annotated[Principal, Depends(enforce_token_limits)],
    clients: ClientsDep,
    config: SettingsDep,
) -> launch.RunStarted:
    """Start a team on a task. Agent runs are long (and may wait for a person), so this
    answers at once: follow the run at `GET /v1/runs/{id}`."""
    wid, _ = await launch.start(
        clients,
        config,
        principal,
        feature=body.feature,
        workflow="AgentTeamWorkflow",
        arg=agent_request(body, config, principal),
        result_type=AgentRunResult,
    )
    return launch.started(config, wid)


@router.get("/v1/agent-runs/{run_id}/transcript", response_model=Transcript, responses=ERRORS)
async def transcript(
    run_id: RunId,
    principal: PrincipalDep,
    clients: ClientsDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Transcript:
    """The run's turns in full, in order (`after` a sequence number, for paging)."""
    await owned_run(clients, principal.tenant, run_id)
    async with clients.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT seq, round, turn, role, kind, content, data FROM agent_transcripts "
                "WHERE transcript_id = :id AND tenant_id = :t AND seq > :after "
                "ORDER BY seq LIMIT :limit"
            ),
            {"id": run_id, "t": principal.tenant_id, "after": after, "limit": limit},
        )
        entries = [TranscriptEntry.model_validate(dict(r._mapping)) for r in rows]
    return Transcript(id=run_id, entries=entries)


@router.post(
    "/v1/document-jobs",
    response_model=launch.RunStarted,
    status_code=202,
    responses=ERRORS,
)
async def create_document_job(
    body: DocumentJobBody,
    principal: Annotated[Principal, Depends(enforce_token_limits)],
    clients: ClientsDep,
    config: SettingsDep,
) -> launch.RunStarted:
    """Run a role over each matching document; progress by `GET /v1/runs/{id}`, results
    (partial while it runs) by `GET /v1/document-jobs/{id}/results`."""
    try:
        role = role_spec(body.role)
    except UnknownRole as exc:
        raise ApiError(422, "UnknownRole", str(exc)) from exc
    if role.kind != "extractor":
        raise ApiError(422, "InvalidRole", f"role {body.role!r} is not an extractor role")
    request = DocumentJobRequest(
        context=call_context(principal, body.feature, body.budget),
        gateway=gateway_config(config),
        role=role,
        instructions=body.instructions,
        filter=body.filter,
        max_documents=body.max_documents,
        concurrency=body.concurrency or config.agents.document_concurrency,
    )
    wid, _ = await launch.start(
        clients,
        config,
        principal,
        feature=body.feature,
        workflow="DocumentJobWorkflow",
        arg=request,
        result_type=DocumentJobResult,
    )
    return launch.started(config, wid)


@router.get("/v1/document-jobs/{run_id}/results", response_model=DocumentResults, responses=ERRORS)
async def document_results(
    run_id: RunId,
    principal: PrincipalDep,
    clients: ClientsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> DocumentResults:
    """The job's stored results so far, failed documents included."""
    await owned_run(clients, principal.tenant, run_id)
    async with clients.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT document_id, ok, result, error, cost_usd, created_at "
                "FROM agent_document_results WHERE job_id = :id AND tenant_id = :t "
                "ORDER BY created_at, document_id LIMIT :limit"
            ),
            {"id": run_id, "t": principal.tenant_id, "limit": limit},
        )
        results = [
            StoredDocumentResult(
                document_id=str(r.document_id),
                ok=r.ok,
                result=r.result,
                error=r.error,
                cost_usd=float(r.cost_usd),
                created_at=r.created_at,
            )
            for r in rows
        ]
    return DocumentResults(id=run_id, results=results)
