"""Drop-in model endpoints: OpenAI's `POST /v1/chat/completions` and `GET /v1/models`, and
Anthropic's `POST /v1/messages`, served by the same gateway path as `POST /v1/model-calls`.

Point an SDK at Keel (`OpenAI(base_url="http://keel:8000/v1", api_key=KEEL_KEY)` or
`Anthropic(base_url="http://keel:8000", api_key=KEEL_KEY)`) and every request goes through
Keel's caches, routing, budgets, rate limits, breakers, fallback and ledger. Headers:
`x-keel-feature` names the ledger's feature; `x-keel-max-usd` / `x-keel-max-tokens` cap the
call. Each answer says which run served it (`x-keel-run-id`), from which cache layer
(`x-keel-cache`) and at what cost (`x-keel-cost-usd`).

With `stream: true` the answer is sent as the provider's server-sent events. The events start
once the call's result is durable (ledger row written, caches filled), so an error still
arrives as an HTTP status the SDK raises on, never as a broken stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from api import compat
from api.deps import ClientsDep, SettingsDep, authenticate
from api.errors import ApiError
from api.ratelimit import enforce_token_limits
from api.routes.model_calls import answer_call
from keel.auth import Principal
from keel.clients import Clients
from keel.contracts.gateway import ModelCall, ModelCallResult
from keel.contracts.guards import RunBudget
from keel.settings import Settings

router = APIRouter(tags=["OpenAI and Anthropic compatible"])

FEATURE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
# An SDK waits up to 10 minutes by default; a call still running after this is answered 504
# with its run id (it keeps running, and `GET /v1/runs/{id}` has its result).
WAIT_SECONDS = 300.0


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request, in the provider's error shape"},
    401: {"description": "Missing, malformed or unknown API key"},
    404: {"description": "Unknown model: the message lists the ones that exist"},
    429: {"description": "Token limit (with retry-after) or budget spent (x-should-retry false)"},
    502: {"description": "No provider of the chain could answer"},
    503: {"description": "Providers overloaded or rate limiting"},
    504: {"description": "Still running after the wait; the message names the run"},
}


def _feature(request: Request, default: str) -> str:
    feature = request.headers.get("x-keel-feature", default)
    if not FEATURE.match(feature):
        raise ApiError(
            400,
            "invalid_request_error",
            f"x-keel-feature {feature!r}: lower-case letters, digits, '-' and '_', "
            "starting with a letter, at most 40 characters",
            details={"field": "x-keel-feature"},
        )
    return feature


def _budget(request: Request) -> RunBudget:
    caps: dict[str, Any] = {}
    for header, field, kind in (
        ("x-keel-max-usd", "max_usd", float),
        ("x-keel-max-tokens", "max_tokens", int),
    ):
        raw = request.headers.get(header)
        if raw is None:
            continue
        try:
            caps[field] = kind(raw)
        except ValueError:
            raise ApiError(
                400,
                "invalid_request_error",
                f"{header} {raw!r} is not a {kind.__name__}",
                details={"field": header},
            ) from None
    return RunBudget(**caps)


async def _answer(
    request: Request,
    clients: Clients,
    config: Settings,
    principal: Principal,
    call: ModelCall,
    feature: str,
) -> tuple[str, ModelCallResult]:
    wid, result = await answer_call(
        request,
        clients,
        config,
        principal,
        call,
        feature=_feature(request, feature),
        budget=_budget(request),
        wait_seconds=WAIT_SECONDS,
    )
    if result is None:
        raise ApiError(
            504,
            "timeout",
            f"the call is still running after {WAIT_SECONDS:.0f} s; its result will be at "
            f"/v1/runs/{wid}",
            details={"id": wid},
        )
    if not result.ok:
        raise compat.refusal(result)
    return wid, result


def _reply(
    wid: str, result: ModelCallResult, content: Iterator[str] | dict[str, Any]
) -> JSONResponse | StreamingResponse:
    """The answer (a JSON body, or server-sent events) with Keel's headers saying which run
    served it, from which cache layer, at what cost."""
    headers = {
        "x-keel-run-id": wid,
        "x-keel-cache": result.cache_layer,
        "x-keel-cost-usd": f"{result.cost_usd:.8f}",
    }
    if isinstance(content, dict):
        return JSONResponse(content, headers=headers)
    return StreamingResponse(
        content,
        media_type="text/event-stream",
        headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"},
    )


@router.get("/v1/models", dependencies=[Depends(authenticate)], responses={401: ERRORS[401]})
async def list_models(config: SettingsDep) -> dict[str, Any]:
    """The model names a client may send: Keel's routing aliases, then every priced model."""
    return compat.model_list(sorted(config.prices))


@router.post("/v1/chat/completions", responses=ERRORS)
async def chat_completions(
    request: Request,
    body: compat.ChatCompletionBody,
    principal: Annotated[Principal, Depends(enforce_token_limits)],
    clients: ClientsDep,
    config: SettingsDep,
) -> Any:
    """OpenAI's chat completions (non-streaming and `stream: true`) through Keel's gateway."""
    call = compat.openai_call(body, sorted(config.prices))
    wid, result = await _answer(request, clients, config, principal, call, "chat-completions")
    include = bool(body.stream_options and body.stream_options.include_usage)
    return _reply(
        wid,
        result,
        compat.openai_events(wid, result, call, include)
        if body.stream
        else compat.chat_completion(wid, result, call),
    )


@router.post("/v1/messages", responses=ERRORS)
async def messages(
    request: Request,
    body: compat.MessagesBody,
    principal: Annotated[Principal, Depends(enforce_token_limits)],
    clients: ClientsDep,
    config: SettingsDep,
) -> Any:
    """Anthropic's Messages API (non-streaming and `stream: true`) through Keel's gateway."""
    call = compat.anthropic_call(body, sorted(config.prices))
    wid, result = await _answer(request, clients, config, principal, call, "messages")
    return _reply(
        wid,
        result,
        compat.anthropic_events(wid, result, call)
        if body.stream
        else compat.message(wid, result, call),
    )
