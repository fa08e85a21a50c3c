"""`POST /v1/model-calls`: one model call through the gateway, as a durable run."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from activities.providers import Provider, build_providers
from api import launch
from api.deps import ClientsDep, SettingsDep
from api.direct_call import serve_direct
from api.errors import ApiError, ErrorResponse
from api.ratelimit import enforce_token_limits
from api.strict import StrictBody
from keel.auth import Principal
from keel.clients import Clients
from keel.contracts.gateway import ModelCall, ModelCallRequest, ModelCallResult
from keel.contracts.guards import RunBudget
from keel.runs import call_context, gateway_config
from keel.settings import Settings

router = APIRouter(prefix="/v1/model-calls", tags=["model calls"])


class ModelCallBody(StrictBody):
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


def providers_of(request: Request, config: SettingsDep) -> dict[str, Provider]:
    """The API process's own provider clients (for direct calls), built on first use."""
    providers: dict[str, Provider] | None = getattr(request.app.state, "providers", None)
    if providers is None:
        providers = build_providers(config, timeout=config.provider_timeout_seconds)
        request.app.state.providers = providers
    return providers


@router.post(
    "",
    response_model=ModelCallAnswer,
    responses={**ERRORS, 202: {"model": launch.RunStarted}},
)
async def create_model_call(
    request: Request,
    body: ModelCallBody,
    principal: Annotated[Principal, Depends(enforce_token_limits)],
    clients: ClientsDep,
    config: SettingsDep,
) -> Any:
    """Answer through caches, routing, budgets, breakers and fallback; 202 + run id if slow.

    The happy path (a cache hit, or one successful attempt at the first routed model) is
    served here; anything else runs as a durable `ModelCallWorkflow` (see `api.direct_call`).
    """
    if body.call.model and body.call.model not in config.prices:
        raise ApiError(
            422,
            "InvalidInput",
            f"unknown model {body.call.model!r}: use one of {', '.join(sorted(config.prices))} "
            "or leave `model` empty to route by complexity",
            details={"field": "call.model", "known": sorted(config.prices)},
        )
    wid, result = await answer_call(
        request,
        clients,
        config,
        principal,
        body.call,
        feature=body.feature,
        budget=body.budget,
        wait_seconds=body.wait_seconds,
    )
    if result is None:
        return JSONResponse(launch.started(config, wid).model_dump(), status_code=202)
    return ModelCallAnswer(id=wid, result=result)


async def answer_call(
    request: Request,
    clients: Clients,
    config: Settings,
    principal: Principal,
    model_call: ModelCall,
    *,
    feature: str,
    budget: RunBudget,
    wait_seconds: float,
) -> tuple[str, ModelCallResult | None]:
    """One model call the way every API surface makes it: served here on the happy path
    (`api.direct_call`), else as a durable `ModelCallWorkflow`, waited on for `wait_seconds`.
    Returns the id it ran under and its result (None: still running after the wait)."""
    call = ModelCallRequest(
        call=model_call,
        context=call_context(principal, feature, budget),
        config=gateway_config(config),
    )
    if config.direct_model_calls:
        served = await serve_direct(
            clients, config, providers_of(request, config), call, wait_seconds=wait_seconds
        )
        if served is not None:
            return served
    wid, result = await launch.start(
        clients,
        config,
        principal,
        feature=feature,
        workflow="ModelCallWorkflow",
        arg=call,
        wait_seconds=wait_seconds,
        result_type=ModelCallResult,
    )
    return wid, result
