"""OpenAI through the official SDK (Chat Completions)."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from pydantic import SecretStr

from activities.providers.base import (
    SdkErrors,
    TextSink,
    bad_response,
    client_options,
    provider_failure,
    refused,
)
from keel.contracts.llm import LlmRequest, LlmResponse, Usage

SDK_ERRORS = SdkErrors(
    base=openai.APIError,
    status=openai.APIStatusError,
    timeout=openai.APITimeoutError,
    connection=openai.APIConnectionError,
    # The SDK calls `json.loads` on a JSON content type without catching its errors.
    bad_response=(openai.APIResponseValidationError, json.JSONDecodeError, UnicodeDecodeError),
)

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


class OpenAIProvider:
    """Completions from OpenAI's Chat Completions API (or a server that speaks it).

    The SDK's own retries are off (`max_retries=0`): Temporal owns retries, so every attempt
    is an activity attempt in workflow history, with its typed failure.

    Prompt caching is automatic on OpenAI's side for long prompts with a stable prefix; the
    system prompt goes first so it is that prefix. `cacheable_prefix` needs no flag here.
    """

    name: str = "openai"

    def __init__(
        self,
        *,
        api_key: SecretStr | str,
        base_url: str = "",
        timeout: float = 60.0,
    ) -> None:
        """Build the client once; the worker injects the provider into its activities.

        Args:
            api_key: `Settings.openai_api_key`. Unwrapped only to hand to the SDK.
            base_url: `Settings.openai_base_url`, including `/v1`; empty means the SDK's
                default (which honours `OPENAI_BASE_URL`).
            timeout: seconds for the whole HTTP request. Keep it below the activity's
                start-to-close timeout so a hung call fails as PROVIDER_TIMEOUT.

        Raises:
            ValueError: the key is empty (the provider is not configured).
        """
        self._client = openai.AsyncOpenAI(**client_options("openai", api_key, base_url, timeout))

    async def complete(self, request: LlmRequest, on_text: TextSink | None = None) -> LlmResponse:
        """Run one Chat Completions call (streamed to `on_text` when given).

        Args:
            request: the provider-neutral request.

        Returns:
            The text and usage. OpenAI's `prompt_tokens` includes the cached tokens, so
            `input_tokens` is `prompt_tokens - prompt_tokens_details.cached_tokens` (the
            uncached part) and `cached_input_tokens` is the cached part, matching how the
            two are priced. OpenAI does not bill cache writes, so `cache_write_tokens` is 0.

        Raises:
            temporalio.exceptions.ApplicationError: see `activities.providers.base`; a
                refusal or a `content_filter` finish is a non-retryable PROVIDER_REJECTED.
        """
        messages: list[ChatCompletionMessageParam] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        for m in request.messages:
            if m.role == "user":
                messages.append({"role": "user", "content": m.content})
            else:
                messages.append({"role": "assistant", "content": m.content})
        started = time.perf_counter()
        arguments: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_completion_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stop": request.stop or openai.omit,
            **self._options(request),
        }
        try:
            if on_text is not None:
                return await self._streamed(arguments, on_text, started)
            completion = await self._client.chat.completions.create(**arguments)
        except SDK_ERRORS.catch as exc:
            raise provider_failure(exc, provider=self.name, sdk=SDK_ERRORS) from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        return self._to_response(completion, latency_ms)

    def _options(self, request: LlmRequest) -> dict[str, Any]:
        """Extra arguments of the call: none for OpenAI (a server that speaks its API, such as
        llama.cpp's, adds what it supports)."""
        del request
        return {}

    async def _streamed(
        self, arguments: dict[str, Any], on_text: TextSink, started: float
    ) -> LlmResponse:
        """The same call with `stream: true`: pieces to `on_text`, usage from the last chunk."""
        stream = await self._client.chat.completions.create(
            **arguments, stream=True, stream_options={"include_usage": True}
        )
        pieces: list[str] = []
        refusal, finish_reason, model, usage = "", None, str(arguments["model"]), Usage()
        async for chunk in stream:
            model = chunk.model or model
            if chunk.usage is not None:
                usage = _usage_of(chunk.usage)
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                    await on_text(choice.delta.content)
                refusal += choice.delta.refusal or ""
                finish_reason = choice.finish_reason or finish_reason
        if refusal or finish_reason == "content_filter":
            raise refused(self.name, refusal or "finish_reason=content_filter")
        return LlmResponse(
            text="".join(pieces),
            model=model,
            provider=self.name,
            usage=usage,
            stop_reason=_STOP_REASONS.get(finish_reason or "", finish_reason or "end_turn"),
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )

    def _to_response(self, completion: object, latency_ms: float) -> LlmResponse:
        # A non-JSON content type makes the SDK return the raw text instead of a completion,
        # and it builds models without validation, so a wrong shape surfaces as missing
        # attributes or an empty `choices`.
        if not isinstance(completion, ChatCompletion):
            raise bad_response(self.name, f"expected a completion, got {type(completion).__name__}")
        try:
            choice = completion.choices[0]
            text = choice.message.content or ""
            refusal = choice.message.refusal
            finish_reason = choice.finish_reason
            usage = _usage(completion)
            model = completion.model
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise bad_response(self.name, f"unexpected completion shape: {exc}") from exc
        if refusal or finish_reason == "content_filter":
            raise refused(self.name, refusal or "finish_reason=content_filter")
        return LlmResponse(
            text=text,
            model=model,
            provider=self.name,
            usage=usage,
            stop_reason=_STOP_REASONS.get(finish_reason, finish_reason or "end_turn"),
            latency_ms=latency_ms,
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool (worker shutdown, tests)."""
        await self._client.close()


def _usage(completion: ChatCompletion) -> Usage:
    if completion.usage is None:
        # Some OpenAI-compatible servers omit usage; zero is better than failing the call.
        return Usage()
    return _usage_of(completion.usage)


def _usage_of(usage: CompletionUsage) -> Usage:
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    return Usage(
        input_tokens=max(usage.prompt_tokens - cached, 0),
        output_tokens=usage.completion_tokens,
        cached_input_tokens=cached,
    )
