"""`POST /v1/model-calls`: one model call through the gateway, as a durable run."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api import launch
from api.deps import ClientsDep, SettingsDep
from api.errors import ApiError, ErrorResponse
from api.ratelimit import enforce_token_limits
from keel.auth import Principal
from keel.contracts.gateway import ModelCall, ModelCallRequest, ModelCallResult
from keel.contracts.guards import RunBudget
from keel.runs import call_context, gateway_config

router = APIRouter(prefix="/v1/model-calls", tags=["model calls"])


class ModelCallBody(BaseModel):
    call: ModelCall
    feature: str = Field(default="model-call", pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    budget: RunBudget = Field(default_factory=RunBudget)
    wait_seconds: float = Field(default=30.0, ge=0, le=300)


class ModelCallAnswer(BaseModel):
    id: str
    result: ModelCallResult


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse},
    429: {"model": ErrorResponse, "description": "A token limit of this API key is exhausted"},
}


@router.post(
    "",
    response_model=ModelCallAnswer,
    responses={**ERRORS, 202: {"model": launch.RunStarted}},
)
async def create_model_call(
    body: ModelCallBody,
    principal: Annotated[Principal, Depends(enforce_token_limits)],
    clients: ClientsDep,
    config: SettingsDep,
) -> Any:
    """Answer through caches, routing, budgets, breakers and fallback; 202 + run id if slow."""
    if body.call.model and body.call.model not in config.prices:
        raise ApiError(
            422,
            "InvalidInput",
            f"unknown model {body.call.model!r}: use one of {', '.join(sorted(config.prices))} "
            "or leave `model` empty to route by complexity",
            details={"field": "call.model", "known": sorted(config.prices)},
        )
    request = ModelCallRequest(
        call=body.call,
        context=call_context(principal, body.feature, body.budget),
        config=gateway_config(config),
    )
    wid, result = await launch.start(
        clients,
        config,
        principal,
        feature=body.feature,
        workflow="ModelCallWorkflow",
        arg=request,
        wait_seconds=body.wait_seconds,
        result_type=ModelCallResult,
    )
    if result is None:
        return JSONResponse(launch.started(config, wid).model_dump(), status_code=202)
    return ModelCallAnswer(id=wid, result=result)
