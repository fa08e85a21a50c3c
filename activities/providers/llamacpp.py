"""The optional local generative model: llama.cpp's OpenAI-compatible server, offline.

`keel up --local-llm` starts the server (`keel/app/local_llm.py`); this provider talks to it
through the OpenAI SDK, so failures map to Keel's typed errors exactly as OpenAI's do. What
it adds: a request's `json_schema` becomes `response_format`, which llama.cpp turns into a
grammar the sampler cannot leave. A 1.5B model writes a planner's or critic's JSON reliably
only that way (see the README's "An offline model for the agent roles").
"""

from __future__ import annotations

from typing import Any

from activities.providers.base import TextSink
from activities.providers.openai_provider import OpenAIProvider
from keel.contracts.llm import LlmRequest, LlmResponse


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-style `response_format` that holds a reply to `schema`."""
    return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}


class LlamaCppProvider(OpenAIProvider):
    """Completions from a local llama.cpp server; zero cost, same gateway path as the others."""

    name: str = "llamacpp"

    def __init__(self, *, base_url: str, timeout: float = 110.0) -> None:
        """Build the client once; the worker injects the provider into its activities.

        Args:
            base_url: the server's `.../v1` URL (`Settings.local_llm_url`).
            timeout: seconds for the whole request; below the activity's timeout, so a CPU
                too slow for the prompt fails as PROVIDER_TIMEOUT and the chain moves on.
        """
        # llama.cpp checks no key unless started with one; the SDK insists on a value.
        super().__init__(api_key="no-key", base_url=base_url, timeout=timeout)

    def _options(self, request: LlmRequest) -> dict[str, Any]:
        if request.json_schema is None:
            return {}
        return {"response_format": response_format(request.json_schema)}

    async def complete(self, request: LlmRequest, on_text: TextSink | None = None) -> LlmResponse:
        """One chat completion, held to `request.json_schema` when the request has one.

        Returns:
            The response under the model name asked for (llama.cpp answers with its alias or
            file name), so the ledger prices and reports it as configured.
        """
        response = await super().complete(request, on_text)
        return response.model_copy(update={"model": request.model})
