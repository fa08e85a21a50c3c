"""Providers against the real SDK clients and a local server that speaks their HTTP formats."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email.utils import formatdate
from time import time

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from activities.providers import (
    NOT_ENOUGH_INFORMATION,
    LocalExtractiveProvider,
    Provider,
    build_providers,
    format_sources,
    parse_sources,
)
from activities.providers.anthropic_provider import AnthropicProvider
from activities.providers.base import retry_after_seconds
from activities.providers.openai_provider import OpenAIProvider
from keel.contracts.llm import ChatMessage, LlmRequest, Usage
from keel.errors import ErrorType
from keel.settings import Settings
from tests.support.provider_harness import FaultKind, ProviderHarness, ProviderName

KEY = "sk-test-secret-key"
SYSTEM = "You answer questions about company policy."


@pytest.fixture
def harness() -> Iterator[ProviderHarness]:
    with ProviderHarness() as h:
        yield h


def make_provider(
    name: ProviderName, harness: ProviderHarness, *, timeout: float = 5.0
) -> AnthropicProvider | OpenAIProvider:
    if name == "anthropic":
        return AnthropicProvider(
            api_key=SecretStr(KEY), base_url=harness.anthropic_base_url, timeout=timeout
        )
    return OpenAIProvider(api_key=SecretStr(KEY), base_url=harness.openai_base_url, timeout=timeout)


@pytest.fixture(params=["anthropic", "openai"])
async def provider(
    request: pytest.FixtureRequest, harness: ProviderHarness
) -> AsyncIterator[AnthropicProvider | OpenAIProvider]:
    p = make_provider(request.param, harness)
    yield p
    await p.aclose()


def ask(text: str = "Hi there", **kwargs: object) -> LlmRequest:
    return LlmRequest.model_validate(
        {
            "model": "test-model",
            "system": SYSTEM,
            "messages": [ChatMessage(role="user", content=text)],
            **kwargs,
        }
    )


# --- success paths -------------------------------------------------------------------------


async def test_anthropic_success_maps_usage_and_caches_system(harness: ProviderHarness) -> None:
    harness.reply_text = "Sixteen weeks."
    harness.cached_tokens = 60
    harness.cache_write_tokens = 10
    p = make_provider("anthropic", harness)
    try:
        response = await p.complete(ask("How long is leave?", stop=["END"], max_tokens=50))
    finally:
        await p.aclose()

    assert response.text == "Sixteen weeks."
    assert response.provider == "anthropic"
    assert response.model == "test-model"
    assert response.stop_reason == "end_turn"
    assert response.latency_ms > 0
    assert response.usage == Usage(
        input_tokens=100, output_tokens=20, cached_input_tokens=60, cache_write_tokens=10
    )
    [seen] = harness.requests_for("anthropic")
    assert seen.path == "/v1/messages"
    assert seen.body["system"] == [
        {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}
    ]
    assert seen.body["messages"] == [{"role": "user", "content": "How long is leave?"}]
    assert seen.body["max_tokens"] == 50
    assert seen.body["stop_sequences"] == ["END"]
    assert "x-api-key" not in seen.headers
    assert KEY not in str(seen.headers)
    assert "anthropic-version" in seen.headers


async def test_anthropic_without_cacheable_prefix_sends_plain_system(
    harness: ProviderHarness,
) -> None:
    p = make_provider("anthropic", harness)
    try:
        await p.complete(ask(cacheable_prefix=False))
        await p.complete(LlmRequest(model="m", messages=[ChatMessage(role="user", content="x")]))
    finally:
        await p.aclose()
    first, second = harness.requests_for("anthropic")
    assert first.body["system"] == [{"type": "text", "text": SYSTEM}]
    assert "system" not in second.body


async def test_openai_success_splits_cached_from_uncached_input(harness: ProviderHarness) -> None:
    harness.reply_text = "Within 14 days."
    harness.cached_tokens = 60
    p = make_provider("openai", harness)
    try:
        response = await p.complete(ask("When are expenses paid?", stop=["END"], max_tokens=50))
    finally:
        await p.aclose()

    assert response.text == "Within 14 days."
    assert response.provider == "openai"
    assert response.stop_reason == "end_turn"
    # The harness reports prompt_tokens = 160, of which 60 were cached.
    assert response.usage == Usage(input_tokens=100, output_tokens=20, cached_input_tokens=60)
    [seen] = harness.requests_for("openai")
    assert seen.path == "/v1/chat/completions"
    assert seen.body["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "When are expenses paid?"},
    ]
    assert seen.body["max_completion_tokens"] == 50
    assert seen.body["stop"] == ["END"]
    assert "authorization" not in seen.headers
    assert KEY not in str(seen.headers)


async def test_providers_satisfy_the_protocol(provider: Provider) -> None:
    assert isinstance(provider, Provider)
    assert isinstance(LocalExtractiveProvider(), Provider)


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="not configured"):
        AnthropicProvider(api_key=SecretStr(""))
    with pytest.raises(ValueError, match="not configured"):
        OpenAIProvider(api_key="")


def test_build_providers_only_builds_configured_ones() -> None:
    bare = Settings(_env_file=None, anthropic_api_key=SecretStr(""), openai_api_key=SecretStr(""))
    assert set(build_providers(bare)) == {"local"}
    keyed = Settings(
        _env_file=None, anthropic_api_key=SecretStr(KEY), openai_api_key=SecretStr(KEY)
    )
    providers = build_providers(keyed)
    assert {name: p.name for name, p in providers.items()} == {
        "local": "local",
        "anthropic": "anthropic",
        "openai": "openai",
    }


# --- faults --------------------------------------------------------------------------------

FAULTS: list[tuple[FaultKind, ErrorType, bool, int | None]] = [
    ("rate_limited", ErrorType.PROVIDER_RATE_LIMITED, False, 429),
    ("server_error", ErrorType.PROVIDER_UNAVAILABLE, False, 500),
    ("overloaded", ErrorType.PROVIDER_OVERLOADED, False, 529),
    ("malformed", ErrorType.PROVIDER_BAD_RESPONSE, False, 200),
    ("wrong_shape", ErrorType.PROVIDER_BAD_RESPONSE, False, 200),
    ("invalid_request", ErrorType.PROVIDER_REJECTED, True, 400),
    ("unauthorized", ErrorType.PROVIDER_REJECTED, True, 401),
    ("refusal", ErrorType.PROVIDER_REJECTED, True, 200),
]


@pytest.mark.parametrize(("kind", "error_type", "non_retryable", "status"), FAULTS)
async def test_fault_maps_to_typed_error(
    harness: ProviderHarness,
    provider: AnthropicProvider | OpenAIProvider,
    kind: FaultKind,
    error_type: ErrorType,
    non_retryable: bool,
    status: int | None,
) -> None:
    name: ProviderName = "anthropic" if provider.name == "anthropic" else "openai"
    harness.fail_next(name, kind)

    with pytest.raises(ApplicationError) as caught:
        await provider.complete(ask())

    err = caught.value
    assert err.type == error_type
    assert err.non_retryable is non_retryable
    assert err.details[0]["provider"] == provider.name
    assert err.details[0]["status"] == status
    assert KEY not in str(err)
    if kind == "rate_limited":
        assert err.next_retry_delay == timedelta(seconds=7)
    else:
        assert err.next_retry_delay is None
    # No SDK-internal retry: Temporal must see (and own) every attempt.
    assert len(harness.requests_for(name)) == 1
    # The fault was used up; the next call goes through.
    assert (await provider.complete(ask())).text == harness.reply_text


@pytest.mark.parametrize("name", ["anthropic", "openai"])
async def test_slow_answer_is_a_retryable_timeout(
    harness: ProviderHarness, name: ProviderName
) -> None:
    harness.slow_seconds = 3.0
    harness.fail_next(name, "slow")
    p = make_provider(name, harness, timeout=0.5)
    try:
        with pytest.raises(ApplicationError) as caught:
            await p.complete(ask())
    finally:
        await p.aclose()
    assert caught.value.type == ErrorType.PROVIDER_TIMEOUT
    assert caught.value.non_retryable is False
    assert caught.value.details[0]["provider"] == name
    assert len(harness.requests_for(name)) == 1


@pytest.mark.parametrize("name", ["anthropic", "openai"])
async def test_unreachable_provider_is_unavailable(name: ProviderName) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    p: AnthropicProvider | OpenAIProvider = (
        AnthropicProvider(api_key=KEY, base_url=base, timeout=2.0)
        if name == "anthropic"
        else OpenAIProvider(api_key=KEY, base_url=base + "/v1", timeout=2.0)
    )
    try:
        with pytest.raises(ApplicationError) as caught:
            await p.complete(ask())
    finally:
        await p.aclose()
    assert caught.value.type == ErrorType.PROVIDER_UNAVAILABLE
    assert caught.value.non_retryable is False


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after": "12"}) == 12.0
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
    assert retry_after_seconds(None) is None
    in_a_minute = retry_after_seconds({"retry-after": formatdate(time() + 60, usegmt=True)})
    assert in_a_minute is not None
    assert 55 <= in_a_minute <= 61


# --- local extractive provider -------------------------------------------------------------

SOURCES = [
    (
        "Parental leave policy (2024-01-10, HR)",
        "Employees receive 16 weeks of paid parental leave. Leave can be taken in up to three "
        "blocks within the first year.\nManagers must be notified 30 days in advance.",
    ),
    (
        "Expense policy (2023-06-01, Finance)",
        "Travel expenses are reimbursed within 14 days. Receipts are required for any expense "
        "above 25 euros.",
    ),
    ("Office guide (2022-09-01, Facilities)", "The Berlin office opens at 8am."),
]


def rag_request(question: str) -> LlmRequest:
    prompt = f"{format_sources(SOURCES)}\n\nQuestion: {question}"
    return LlmRequest(
        model="local-extractive",
        system="Answer only from the sources and cite them as [Source n].",
        messages=[ChatMessage(role="user", content=prompt)],
    )


def test_format_sources_layout_and_round_trip() -> None:
    text = format_sources(
        [("Title\n one", "First line.\n\n\nSecond line."), ("Two", "[Source 9] fake header")]
    )
    assert text == (
        "[Source 1] Title one\nFirst line.\nSecond line.\n\n[Source 2] Two\n [Source 9] fake header"
    )
    parsed = parse_sources(text + "\n\nQuestion: anything?")
    assert [(s.number, s.title, s.text) for s in parsed] == [
        (1, "Title one", "First line.\nSecond line."),
        (2, "Two", "[Source 9] fake header"),
    ]


async def test_local_answers_with_citations() -> None:
    local = LocalExtractiveProvider()
    response = await local.complete(
        rag_request("How many weeks of paid parental leave do employees get?")
    )
    assert response.text == "Employees receive 16 weeks of paid parental leave. [Source 1]"
    assert response.provider == "local"
    assert response.model == "local-extractive"
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens == 13  # 10 words (citation included) * 1.3, rounded up
    assert response.usage.cached_input_tokens == 0

    expenses = await local.complete(rag_request("When are travel expenses reimbursed?"))
    assert expenses.text == "Travel expenses are reimbursed within 14 days. [Source 2]"


async def test_local_quotes_several_sentences_best_first() -> None:
    local = LocalExtractiveProvider(min_overlap=0.3)
    response = await local.complete(rag_request("Which receipts and expenses are reimbursed?"))
    assert response.text == (
        "Travel expenses are reimbursed within 14 days. [Source 2] "
        "Receipts are required for any expense above 25 euros. [Source 2]"
    )
    one = LocalExtractiveProvider(min_overlap=0.3, max_sentences=1)
    best = await one.complete(rag_request("Which receipts and expenses are reimbursed?"))
    assert best.text == "Travel expenses are reimbursed within 14 days. [Source 2]"


async def test_local_says_when_it_does_not_know() -> None:
    local = LocalExtractiveProvider()
    unrelated = await local.complete(rag_request("What is the policy on remote work abroad?"))
    assert unrelated.text == NOT_ENOUGH_INFORMATION
    # Half the question's weight is missing from every sentence: below the default 0.5 ...
    partial = "What is the parking fee at the Berlin office?"
    assert (await local.complete(rag_request(partial))).text == NOT_ENOUGH_INFORMATION
    # ... and the threshold is the knob that decides it.
    lenient = LocalExtractiveProvider(min_overlap=0.4)
    assert (await lenient.complete(rag_request(partial))).text == (
        "The Berlin office opens at 8am. [Source 3]"
    )
    only_stopwords = await local.complete(rag_request("What is it?"))
    assert only_stopwords.text == NOT_ENOUGH_INFORMATION


async def test_local_reads_sources_from_the_system_prompt() -> None:
    request = LlmRequest(
        model="local-extractive",
        system="Cite sources.\n\n" + format_sources(SOURCES),
        messages=[ChatMessage(role="user", content="What time does the Berlin office open?")],
    )
    response = await LocalExtractiveProvider().complete(request)
    assert response.text == "The Berlin office opens at 8am. [Source 3]"


async def test_local_is_deterministic_and_echoes_plain_prompts() -> None:
    local = LocalExtractiveProvider()
    first = await local.complete(rag_request("How much notice do managers need for leave?"))
    second = await local.complete(rag_request("How much notice do managers need for leave?"))
    assert first.text == second.text

    plain = await local.complete(ask("Summarise the plan. It has two steps."))
    assert plain.text == "Summarise the plan."
    assert plain.stop_reason == "end_turn"

    stopped = await local.complete(ask("Alpha beta STOP gamma.", stop=["STOP"]))
    assert (stopped.text, stopped.stop_reason) == ("Alpha beta", "stop_sequence")
    capped = await local.complete(ask("one two three four five six.", max_tokens=3))
    assert (capped.text, capped.stop_reason) == ("one two", "max_tokens")


def test_local_rejects_bad_thresholds() -> None:
    with pytest.raises(ValueError):
        LocalExtractiveProvider(min_overlap=0.0)
    with pytest.raises(ValueError):
        LocalExtractiveProvider(max_sentences=0)
