"""What a model call sends and gets back, whichever provider serves it.

These models travel through workflow history (activity input and output), so they are
durable contracts: add fields only with defaults, never rename or retype one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ChatMessage(BaseModel):
    """One turn of the conversation. The system prompt is not a turn: see `LlmRequest.system`."""

    role: Literal["user", "assistant"]
    content: str


class LlmRequest(BaseModel):
    """A provider-neutral chat completion request.

    `system` is the stable prefix of the prompt (instructions, agent role). Providers that
    support prompt caching mark it as cacheable when `cacheable_prefix` is true, so repeated
    calls with the same system prompt pay the cached-input price. Put per-call material
    (retrieved sources, the question) in `messages`, not in `system`, or the cache never hits.
    """

    model: str
    system: str = ""
    messages: list[ChatMessage]
    max_tokens: int = Field(default=1024, gt=0)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    stop: list[str] = Field(default_factory=list)
    cacheable_prefix: bool = True
    # The JSON schema the reply must follow. A provider that can hold its sampler to it (the
    # local llama.cpp model) does; the others ignore it and rely on the prompt.
    json_schema: dict[str, Any] | None = None


class Usage(BaseModel):
    """Token counts of one call, split the way prices are split.

    `input_tokens` is the uncached input only; the cached part is in `cached_input_tokens`
    (read from the provider's prompt cache) and `cache_write_tokens` (written to it), so
    cost is a plain sum of each count times its price.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0


class LlmResponse(BaseModel):
    """A provider-neutral completion.

    `stop_reason` is normalised to `end_turn`, `max_tokens` or `stop_sequence` where the
    provider's own value maps to one of them; any other value is passed through unchanged.
    `latency_ms` is the wall time of the provider call, measured by the activity.
    """

    text: str
    model: str
    provider: str
    usage: Usage = Field(default_factory=Usage)
    stop_reason: str = "end_turn"
    latency_ms: float = 0.0
