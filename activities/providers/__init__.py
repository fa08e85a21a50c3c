"""Model providers: Anthropic, OpenAI, an offline extractive one and the optional local model
(llama.cpp), behind one `Provider`.

The SDK-backed providers live in `anthropic_provider` and `openai_provider` and are not
imported here: importing `anthropic` takes seconds, and code that needs only the protocol or
the local provider should not pay for it. `build_providers` imports them when configured.
"""

from __future__ import annotations

from activities.providers.base import Provider, SdkErrors, provider_failure, status_failure
from activities.providers.local import (
    LocalExtractiveProvider,
    approx_tokens,
    format_sources,
    parse_sources,
)
from keel.rag.prompt import NOT_ENOUGH_INFORMATION
from keel.settings import Settings

__all__ = [
    "NOT_ENOUGH_INFORMATION",
    "LocalExtractiveProvider",
    "Provider",
    "SdkErrors",
    "approx_tokens",
    "build_providers",
    "format_sources",
    "parse_sources",
    "provider_failure",
    "status_failure",
]


def build_providers(settings: Settings, *, timeout: float = 60.0) -> dict[str, Provider]:
    """Every provider `settings` configures, by name; `local` is always there.

    Args:
        settings: a provider is configured when its API key is non-empty.
        timeout: HTTP timeout in seconds for the SDK-backed providers.

    Returns:
        `{"local": ..., "anthropic": ..., "openai": ..., "llamacpp": ...}`, the last three only
        when configured (a key, or `local_llm.enabled`).
    """
    providers: dict[str, Provider] = {"local": LocalExtractiveProvider()}
    if settings.anthropic_api_key.get_secret_value():
        from activities.providers.anthropic_provider import AnthropicProvider

        providers["anthropic"] = AnthropicProvider(
            api_key=settings.anthropic_api_key,
            base_url=settings.anthropic_base_url,
            timeout=timeout,
        )
    if settings.openai_api_key.get_secret_value():
        from activities.providers.openai_provider import OpenAIProvider

        providers["openai"] = OpenAIProvider(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout=timeout,
        )
    if settings.local_llm.enabled:
        from activities.providers.llamacpp import LlamaCppProvider

        providers["llamacpp"] = LlamaCppProvider(
            base_url=settings.local_llm_url, timeout=settings.local_llm.timeout_seconds
        )
    return providers
