"""Anthropic through the official SDK (Messages API), with the system prompt cached."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
from anthropic.types import Message, MessageParam, TextBlock, TextBlockParam
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
    base=anthropic.APIError,
    status=anthropic.APIStatusError,
    timeout=anthropic.APITimeoutError,
    connection=anthropic.APIConnectionError,
    # The SDK calls `json.loads` on a JSON content type without catching its errors.
    bad_response=(anthropic.APIResponseValidationError, json.JSONDecodeError, UnicodeDecodeError),
)


class AnthropicProvider:
    """Completions from Anthropic's Messages API.

    The SDK's own retries are off (`max_retries=0`): Temporal owns retries, so every attempt
    is an activity attempt in workflow history, with its typed failure.
    """

    name: str = "anthropic"

    def __init__(
        self,
        *,
        api_key: SecretStr | str,
        base_url: str = "",
        timeout: float = 60.0,
    ) -> None:
        """Build the client once; the worker injects the provider into its activities.

        Args:
            api_key: `Settings.anthropic_api_key`. Unwrapped only to hand to the SDK.
            base_url: `Settings.anthropic_base_url`; empty means the SDK's default
                (which honours `ANTHROPIC_BASE_URL`).
            timeout: seconds for the whole HTTP request. Keep it below the activity's
                start-to-close timeout so a hung call fails as PROVIDER_TIMEOUT, not as a
                Temporal timeout with no detail.

        Raises:
            ValueError: the key is empty (the provider is not configured).
        """
        self._client = anthropic.AsyncAnthropic(
            **client_options("anthropic", api_key, base_url, timeout)
        )

    async def complete(self, request: LlmRequest, on_text: TextSink | None = None) -> LlmResponse:
        """Run one Messages API call (streamed to `on_text` when given).

        Args:
            request: the provider-neutral request. `temperature` is not sent: the Messages
                API of SDK 2.x has no sampling parameters.

        Returns:
            The text, and usage split into uncached input (`input_tokens`, which Anthropic
            already reports without cached tokens), cache reads and cache writes.

        Raises:
            temporalio.exceptions.ApplicationError: see `activities.providers.base`; a
                `refusal` stop reason is a non-retryable PROVIDER_REJECTED.
        """
        messages: list[MessageParam] = []
        for m in request.messages:
            if m.role == "user":
                messages.append({"role": "user", "content": m.content})
            else:
                messages.append({"role": "assistant", "content": m.content})
        started = time.perf_counter()
        arguments: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
            "system": _system_blocks(request),
            "stop_sequences": request.stop or anthropic.omit,
        }
        try:
            if on_text is None:
                message = await self._client.messages.create(**arguments)
            else:
                async with self._client.messages.stream(**arguments) as stream:
                    async for piece in stream.text_stream:
                        await on_text(piece)
                    message = await stream.get_final_message()
        except SDK_ERRORS.catch as exc:
            raise provider_failure(exc, provider=self.name, sdk=SDK_ERRORS) from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        return self._to_response(message, latency_ms)

    def _to_response(self, message: object, latency_ms: float) -> LlmResponse:
        # A non-JSON content type makes the SDK return the raw text instead of a Message, and
        # it builds models without validation, so a wrong shape surfaces as missing attributes.
        if not isinstance(message, Message):
            raise bad_response(self.name, f"expected a message, got {type(message).__name__}")
        try:
            text = "".join(block.text for block in message.content if isinstance(block, TextBlock))
            usage = Usage(
                input_tokens=message.usage.input_tokens,
                output_tokens=message.usage.output_tokens,
                cached_input_tokens=message.usage.cache_read_input_tokens or 0,
                cache_write_tokens=message.usage.cache_creation_input_tokens or 0,
            )
            model = str(message.model)
            stop_reason = message.stop_reason
        except (AttributeError, TypeError, ValueError) as exc:
            raise bad_response(self.name, f"unexpected message shape: {exc}") from exc
        if stop_reason == "refusal":
            raise refused(self.name, text or "stop_reason=refusal")
        return LlmResponse(
            text=text,
            model=model,
            provider=self.name,
            usage=usage,
            stop_reason=stop_reason or "end_turn",
            latency_ms=latency_ms,
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool (worker shutdown, tests)."""
        await self._client.close()


def _system_blocks(request: LlmRequest) -> list[TextBlockParam] | anthropic.Omit:
    # The system prompt is the stable prefix; a cache breakpoint on it lets later calls with
    # the same instructions read it from Anthropic's prompt cache at a tenth of the price.
    # Prompts shorter than the model's minimum cacheable length are simply not cached.
    if not request.system:
        return anthropic.omit
    block: TextBlockParam = {"type": "text", "text": request.system}
    if request.cacheable_prefix:
        block["cache_control"] = {"type": "ephemeral"}
    return [block]
