"""`POST /v1/rag/query`: a grounded answer from the tenant's documents, as a durable run.

The route waits up to `wait_seconds` for the answer; a slower run answers 202 with its id, and
`GET /v1/runs/{id}` reports its stage while it runs and its answer when done. An exact
answer-cache hit is answered by the route itself (`api.answer_cache`), without a workflow.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, field_validator, model_validator

from api import launch
from api.answer_cache import serve_hit
from api.deps import ClientsDep, SettingsDep
from api.errors import ApiError, ErrorResponse
from api.ratelimit import enforce_token_limits
from api.strict import StrictBody
from keel.auth import Principal
from keel.contracts.guards import RunBudget
from keel.contracts.rag import RagAnswer, RagFilters, RagQueryRequest
from keel.runs import call_context, gateway_config

router = APIRouter(prefix="/v1/rag", tags=["rag"])


class RagQueryBody(StrictBody):
    question: str = Field(min_length=1, max_length=4000, examples=["How many vacation days?"])
    filters: RagFilters = Field(
        default_factory=RagFilters,
        description="Explicit metadata filters; they win over filters read from the question.",
    )
    tenant: str | None = Field(
        default=None,
        description="When given, must be the API key's tenant: a guard against asking one "
        "tenant's documents with another tenant's key.",
    )
    budget: RunBudget = Field(default_factory=RunBudget)
    wait_seconds: float = Field(default=30.0, ge=0, le=300)

    @field_validator("question")
    @classmethod
    def _printable(cls, question: str) -> str:
        if not question.strip():
            raise ValueError("the question is blank")
        if "\x00" in question:
            raise ValueError("the question contains a NUL character")
        return question

    @model_validator(mode="after")
    def _date_order(self) -> RagQueryBody:
        start, end = self.filters.date_from, self.filters.date_to
        if start is not None and end is not None and start > end:
            raise ValueError("filters.date_from is after filters.date_to")
        return self


class RagQueryAnswer(BaseModel):
    id: str = Field(description="The run; `GET /v1/runs/{id}` shows its stages and history.")
    result: RagAnswer


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse, "description": "`tenant` is not the API key's tenant"},
    429: {"model": ErrorResponse, "description": "A token limit of this API key is exhausted"},
}


@router.post(
    "/query",
    response_model=RagQueryAnswer,
    responses={**ERRORS, 202: {"model": launch.RunStarted}},
)
async def rag_query(
    body: RagQueryBody,
    principal: Annotated[Principal, Depends(enforce_token_limits)],
    clients: ClientsDep,
    config: SettingsDep,
) -> Any:
    """Answer from the tenant's documents with `[Source n]` citations; 202 + run id if slow."""
    if body.tenant is not None and body.tenant != principal.tenant:
        raise ApiError(
            403,
            "Forbidden",
            f"this API key belongs to tenant {principal.tenant!r}, not {body.tenant!r}",
            details={"tenant": principal.tenant},
        )
    request = RagQueryRequest(
        question=body.question,
        filters=body.filters,
        context=call_context(principal, "rag", body.budget),
        gateway=gateway_config(config),
        rag=config.rag,
    )
    hit = await serve_hit(clients, principal, request, embedder_kind=config.embedder)
    if hit is not None:  # already the declared model: skip FastAPI's re-validation (~0.5 ms)
        answer = RagQueryAnswer(id=hit[0], result=hit[1])
        return Response(answer.model_dump_json(), media_type="application/json")
    wid, result = await launch.start(
        clients,
        config,
        principal,
        feature="rag",
        workflow="RagQueryWorkflow",
        arg=request,
        wait_seconds=body.wait_seconds,
        result_type=RagAnswer,
    )
    if result is None:
        return JSONResponse(launch.started(config, wid).model_dump(), status_code=202)
    return RagQueryAnswer(id=wid, result=result)
