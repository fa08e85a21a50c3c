"""OpenAI's and Anthropic's wire formats, translated to and from Keel's `ModelCall`.

`POST /v1/chat/completions` (OpenAI) and `POST /v1/messages` (Anthropic) take the same path as
`POST /v1/model-calls`: this module only reads their request bodies into a `ModelCall`, writes
a `ModelCallResult` back in their response shape (or their server-sent events when `stream`
is true), and names each Keel error the way their SDKs expect, so the SDKs' own typed
exceptions fire (`RateLimitError` on 429, `NotFoundError` for an unknown model, ...).

Model names: a priced model (`claude-haiku-4-5`, `gpt-4o-mini`, ...) pins that model; an alias
routes: `keel-auto` by complexity, `keel-cheap` / `keel-medium` / `keel-expensive` (or the bare
tier name) to that tier's chain, fallback included.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.errors import ApiError
from keel.contracts.gateway import ModelCall, ModelCallResult
from keel.contracts.llm import ChatMessage

Tier = Literal["cheap", "medium", "expensive"]
ALIASES: dict[str, Tier | None] = {
    "keel-auto": None,
    "keel-cheap": "cheap",
    "keel-medium": "medium",
    "keel-expensive": "expensive",
    "cheap": "cheap",
    "medium": "medium",
    "expensive": "expensive",
}
DEFAULT_MAX_TOKENS = 1024


def resolve_model(name: str, known: list[str]) -> tuple[str, Tier | None]:
    """(pinned model, tier) for a requested model name; 404 naming the choices otherwise."""
    if name in known:
        return name, None
    if name in ALIASES:
        return "", ALIASES[name]
    choices = sorted(ALIASES) + sorted(known)
    raise ApiError(
        404,
        "model_not_found",
        f"model {name!r} does not exist here: use one of {', '.join(choices)}",
        details={"field": "model", "known": choices},
    )


def model_list(known: list[str]) -> dict[str, Any]:
    """`GET /v1/models`: the aliases first, then every priced model."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "keel"}
            for name in [*ALIASES, *sorted(known)]
        ],
    }


def _unsupported(body: BaseModel, fields: dict[str, str]) -> None:
    """400 naming the first field the caller set that Keel cannot honour."""
    extra = body.model_extra or {}
    for name, why in fields.items():
        value = extra.get(name)
        if value not in (None, [], {}, False):
            raise ApiError(
                400, "invalid_request_error", f"`{name}` is not supported: {why}", details={}
            )


def _text_of(content: str | list[dict[str, Any]], where: str) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(
                400,
                "invalid_request_error",
                f"{where}: only text content is supported, got a {part.get('type')!r} part",
            )
        parts.append(part["text"])
    return "\n".join(parts)


# -- OpenAI: /v1/chat/completions ---------------------------------------------------------


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionBody(BaseModel):
    """The fields of OpenAI's request Keel reads; others are accepted and ignored, except the
    ones that would change the answer's shape, which are refused by name."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[OpenAIMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1, description="Keel answers with one choice.")


OPENAI_UNSUPPORTED = {
    "tools": "Keel's gateway answers text; run tools with an agent run (POST /v1/agent-runs)",
    "functions": "Keel's gateway answers text; run tools with an agent run",
    "response_format": "structured output is not offered by the gateway",
    "logprobs": "providers' log-probabilities are not kept",
    "audio": "text only",
}


def openai_call(body: ChatCompletionBody, known: list[str]) -> ModelCall:
    _unsupported(body, OPENAI_UNSUPPORTED)
    routed = resolve_model(body.model, known)
    system: list[str] = []
    turns: list[ChatMessage] = []
    for n, message in enumerate(body.messages):
        where = f"messages[{n}]"
        if message.role in ("tool", "function"):
            raise ApiError(400, "invalid_request_error", f"{where}: tool messages need tools")
        text = _text_of(message.content or "", where)
        if message.role in ("system", "developer"):
            system.append(text)
        else:
            turns.append(ChatMessage(role=message.role, content=text))
    if not turns:
        raise ApiError(400, "invalid_request_error", "messages: at least one user message")
    return _model_call(
        "\n\n".join(system),
        turns,
        routed,
        body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS,
        body.temperature,
    )


def _model_call(
    system: str,
    turns: list[ChatMessage],
    routed: tuple[str, Tier | None],
    max_tokens: int,
    temperature: float | None,
) -> ModelCall:
    """The gateway's call; an unset temperature keeps the gateway's default."""
    extra: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
    return ModelCall(
        system=system,
        messages=turns,
        model=routed[0],
        tier=routed[1],
        max_tokens=max_tokens,
        **extra,
    )


def _finish(result: ModelCallResult, call: ModelCall) -> str:
    return "length" if result.usage.output_tokens >= call.max_tokens else "stop"


def _openai_usage(result: ModelCallResult) -> dict[str, Any]:
    usage = result.usage
    prompt = usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


def chat_completion(run_id: str, result: ModelCallResult, call: ModelCall) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{run_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text, "refusal": None},
                "logprobs": None,
                "finish_reason": _finish(result, call),
            }
        ],
        "usage": _openai_usage(result),
    }


def pieces(text: str) -> list[str]:
    """The answer cut into word-sized deltas (each keeps its trailing space)."""
    return re.findall(r"\s*\S+\s*", text) or [text]


def _sse(data: dict[str, Any] | str, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def openai_events(
    run_id: str, result: ModelCallResult, call: ModelCall, include_usage: bool
) -> Iterator[str]:
    """`chat.completion.chunk` events: the role, the text's deltas, the finish reason, the
    usage (when asked for with `stream_options.include_usage`), then `[DONE]`."""
    base = {
        "id": f"chatcmpl-{run_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": result.model,
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        event: dict[str, Any] = {**base, "choices": [choice]}
        if include_usage:
            event["usage"] = None
        return _sse(event)

    yield chunk({"role": "assistant", "content": ""})
    for piece in pieces(result.text):
        yield chunk({"content": piece})
    yield chunk({}, _finish(result, call))
    if include_usage:
        yield _sse({**base, "choices": [], "usage": _openai_usage(result)})
    yield _sse("[DONE]")


# -- Anthropic: /v1/messages --------------------------------------------------------------


class AnthropicMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    max_tokens: int = Field(gt=0)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    stream: bool = False


ANTHROPIC_UNSUPPORTED = {
    "tools": "Keel's gateway answers text; run tools with an agent run (POST /v1/agent-runs)",
    "tool_choice": "Keel's gateway answers text",
    "stop_sequences": "stop sequences are not passed to every provider alike",
    "thinking": "extended thinking is not offered by the gateway",
}


def anthropic_call(body: MessagesBody, known: list[str]) -> ModelCall:
    _unsupported(body, ANTHROPIC_UNSUPPORTED)
    routed = resolve_model(body.model, known)
    turns = [
        ChatMessage(role=m.role, content=_text_of(m.content, f"messages[{n}]"))
        for n, m in enumerate(body.messages)
    ]
    return _model_call(
        _text_of(body.system or "", "system"),
        turns,
        routed,
        body.max_tokens,
        body.temperature,
    )


def _stop(result: ModelCallResult, call: ModelCall) -> str:
    return "max_tokens" if result.usage.output_tokens >= call.max_tokens else "end_turn"


def _anthropic_usage(result: ModelCallResult) -> dict[str, Any]:
    return {
        "input_tokens": result.usage.input_tokens,
        "output_tokens": result.usage.output_tokens,
        "cache_read_input_tokens": result.usage.cached_input_tokens,
        "cache_creation_input_tokens": result.usage.cache_write_tokens,
    }


def message(run_id: str, result: ModelCallResult, call: ModelCall) -> dict[str, Any]:
    return {
        "id": f"msg_{run_id}",
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": [{"type": "text", "text": result.text}],
        "stop_reason": _stop(result, call),
        "stop_sequence": None,
        "usage": _anthropic_usage(result),
    }


def anthropic_events(run_id: str, result: ModelCallResult, call: ModelCall) -> Iterator[str]:
    """Anthropic's event sequence: message_start, one text block's start / deltas / stop,
    message_delta (stop reason, output tokens), message_stop."""
    start = message(run_id, result, call)
    start.update(content=[], stop_reason=None)
    start["usage"] = {**_anthropic_usage(result), "output_tokens": 0}
    yield _sse({"type": "message_start", "message": start}, "message_start")
    yield _sse(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        "content_block_start",
    )
    yield _sse({"type": "ping"}, "ping")
    for piece in pieces(result.text):
        yield _sse(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            },
            "content_block_delta",
        )
    yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    yield _sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": _stop(result, call), "stop_sequence": None},
            "usage": {"output_tokens": result.usage.output_tokens},
        },
        "message_delta",
    )
    yield _sse({"type": "message_stop"}, "message_stop")


# -- errors in each provider's shape -------------------------------------------------------


def refusal(result: ModelCallResult) -> ApiError:
    """The HTTP error for a call the gateway declined or could not serve (`ok` false)."""
    if result.stop_reason in ("budget_exhausted", "tenant_budget_exhausted"):
        # 429 like a provider's quota error, but not worth retrying: the budget is spent.
        return ApiError(
            429,
            "insufficient_quota",
            f"{result.stop_reason.replace('_', ' ')}: {result.detail}".rstrip(": "),
            headers={"x-should-retry": "false"},
        )
    if result.attempts and all(a.outcome == "not_configured" for a in result.attempts):
        models = ", ".join(a.model for a in result.attempts)
        return ApiError(
            404,
            "model_not_found",
            f"model {models} is not available here: its provider has no API key configured",
            details={"field": "model"},
        )
    return ApiError(
        502,
        "provider_unavailable",
        f"no provider could answer: {result.detail or result.stop_reason}",
    )
