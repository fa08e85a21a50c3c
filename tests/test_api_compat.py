"""The official `openai` and `anthropic` SDKs pointed at Keel: `/v1/chat/completions`,
`/v1/models` and `/v1/messages`, non-streaming and streaming, through the real gateway path.

Keel runs under uvicorn on a real port; its providers are the local harness that speaks both
wire formats. Real Temporal (for the durable fallback), Postgres and Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import anthropic
import httpx
import openai
import pytest
from sqlalchemy import text
from temporalio.worker import Worker

from keel.auth import create_key
from keel.clients import Clients
from keel.settings import Settings
from tests.conftest import Caller, serve_api
from tests.support.provider_harness import ProviderHarness


@pytest.fixture
def keel_url(gw_settings: Settings) -> Iterator[str]:
    with serve_api(gw_settings) as url:
        yield url


@dataclass
class Sdk:
    """The SDKs' clients pointed at Keel; each one made is closed when the test ends."""

    url: str
    made: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = field(default_factory=list)

    def openai(self, key: str) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0)
        self.made.append(client)
        return client

    def anthropic(self, key: str) -> anthropic.AsyncAnthropic:
        client = anthropic.AsyncAnthropic(base_url=self.url, api_key=key, max_retries=0)
        self.made.append(client)
        return client


@pytest.fixture
async def sdk(keel_url: str) -> AsyncIterator[Sdk]:
    clients = Sdk(keel_url)
    yield clients
    for client in clients.made:
        await client.close()


def _question() -> str:
    return f"What is the refund window for annual plans? ({uuid.uuid4().hex[:8]})"


async def _ledger(clients: Clients, tenant: str) -> list[tuple[str, str, str, str]]:
    async with clients.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT l.feature, l.provider, l.status, l.cache_layer FROM llm_calls l "
                "JOIN tenants t ON t.id = l.tenant_id WHERE t.name = :t ORDER BY l.created_at"
            ),
            {"t": tenant},
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]


async def test_openai_sdk_chat_completion_and_cache_hit(
    sdk: Sdk, caller: Caller, clients: Clients, harness: ProviderHarness
) -> None:
    client = sdk.openai(caller.key)
    question = _question()
    raw = await client.chat.completions.with_raw_response.create(
        model="claude-haiku-4-5",
        messages=[
            {"role": "system", "content": "Answer from the policy."},
            {"role": "user", "content": question},
        ],
        max_tokens=200,
        extra_headers={"x-keel-feature": "support-bot"},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == harness.reply_text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "claude-haiku-4-5"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert raw.headers["x-keel-cache"] == "none"
    assert float(raw.headers["x-keel-cost-usd"]) > 0
    sent = harness.requests_for("anthropic")[-1].body
    assert sent["system"] == "Answer from the policy." or "Answer from the policy." in str(
        sent["system"]
    )

    again = await client.chat.completions.with_raw_response.create(
        model="claude-haiku-4-5",
        messages=[
            {"role": "system", "content": "Answer from the policy."},
            {"role": "user", "content": question},
        ],
        max_tokens=200,
        extra_headers={"x-keel-feature": "support-bot"},
    )
    assert again.headers["x-keel-cache"] == "exact"
    assert again.parse().choices[0].message.content == harness.reply_text
    assert len(harness.requests_for("anthropic")) == 1  # the hit reached no provider
    assert await _ledger(clients, caller.tenant) == [
        ("support-bot", "anthropic", "ok", "none"),
        ("support-bot", "cache", "ok", "exact"),
    ]


async def test_openai_sdk_streams_the_answer_and_its_usage(
    sdk: Sdk, caller: Caller, harness: ProviderHarness
) -> None:
    client = sdk.openai(caller.key)
    stream = await client.chat.completions.create(
        model="keel-cheap",
        messages=[{"role": "user", "content": _question()}],
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas, finish, usage = [], None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            deltas.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(deltas) == harness.reply_text
    assert len([d for d in deltas if d]) > 3  # sent as many deltas, not one blob
    assert finish == "stop"
    assert usage is not None and usage.total_tokens > 0


async def test_openai_sdk_lists_models_and_raises_typed_errors(
    sdk: Sdk, gw_workers: list[Worker], caller: Caller, clients: Clients
) -> None:
    client = sdk.openai(caller.key)
    models = [m.id async for m in client.models.list()]
    assert models[0] == "keel-auto" and "gpt-4o-mini" in models and "keel-cheap" in models

    with pytest.raises(openai.NotFoundError, match="gpt-9"):
        await client.chat.completions.create(
            model="gpt-9", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.BadRequestError, match="tools"):
        await client.chat.completions.create(
            model="keel-auto",
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    with pytest.raises(openai.AuthenticationError):
        await sdk.openai("keel_not-a-key").models.list()

    # A budget refusal: 429 like a provider's quota error, marked not worth retrying.
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(
            model="claude-haiku-4-5",
            messages=[{"role": "user", "content": _question()}],
            extra_headers={"x-keel-max-usd": "0.0000001"},
        )
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert "budget" in str(refused.value)

    # An API key over its token limit: 429 with Retry-After, the SDK's RateLimitError.
    limited = await create_key(clients.engine, caller.tenant, tokens_per_minute=5)
    await sdk.openai(limited).chat.completions.create(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": _question()}]
    )
    with pytest.raises(openai.RateLimitError) as limit:
        await sdk.openai(limited).chat.completions.create(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": _question()}]
        )
    assert int(limit.value.response.headers["retry-after"]) > 0
    assert "tokens_per_minute" in str(limit.value)


async def test_a_failing_provider_falls_back_behind_the_sdk(
    sdk: Sdk,
    gw_workers: list[Worker],
    caller: Caller,
    clients: Clients,
    harness: ProviderHarness,
) -> None:
    harness.fail_next("anthropic", "server_error", times=10)
    client = sdk.openai(caller.key)
    raw = await client.chat.completions.with_raw_response.create(
        model="keel-cheap", messages=[{"role": "user", "content": _question()}]
    )
    completion = raw.parse()
    assert completion.model == "gpt-4o-mini"  # the cheap chain's next model answered
    assert completion.choices[0].message.content == harness.reply_text
    # The fallback ran as a durable workflow, whose id the answer names.
    run_id = raw.headers["x-keel-run-id"]
    assert not run_id.startswith("model-call-direct-")
    await clients.temporal.get_workflow_handle(run_id).describe()
    statuses = [(p, s) for _, p, s, _ in await _ledger(clients, caller.tenant)]
    assert statuses[-1] == ("openai", "ok") and ("anthropic", "error") in statuses


async def test_anthropic_sdk_messages_and_stream(
    sdk: Sdk,
    gw_workers: list[Worker],
    caller: Caller,
    clients: Clients,
    harness: ProviderHarness,
) -> None:
    client = sdk.anthropic(caller.key)
    question = _question()
    reply = await client.messages.create(
        model="gpt-4o-mini",
        max_tokens=200,
        system="Answer from the policy.",
        messages=[{"role": "user", "content": question}],
    )
    assert reply.content[0].type == "text" and reply.content[0].text == harness.reply_text
    assert reply.stop_reason == "end_turn" and reply.usage.output_tokens > 0
    assert len(harness.requests_for("openai")) == 1

    async with client.messages.stream(
        model="gpt-4o-mini",
        max_tokens=200,
        system="Answer from the policy.",
        messages=[{"role": "user", "content": question}],
    ) as stream:
        pieces = [piece async for piece in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(pieces) == harness.reply_text and len(pieces) > 3
    assert final.stop_reason == "end_turn"
    assert len(harness.requests_for("openai")) == 1  # the stream was served from the cache

    with pytest.raises(anthropic.NotFoundError, match="claude-9"):
        await client.messages.create(
            model="claude-9", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.RateLimitError):
        await client.messages.create(
            model="gpt-4o-mini",
            max_tokens=10,
            messages=[{"role": "user", "content": _question()}],
            extra_headers={"x-keel-max-usd": "0.0000001"},
        )
    assert {f for f, *_ in await _ledger(clients, caller.tenant)} == {"messages"}


async def test_plain_http_errors_keep_keel_shape_elsewhere(keel_url: str, caller: Caller) -> None:
    async with httpx.AsyncClient(base_url=keel_url, headers=caller.headers) as http:
        keel_error = await http.post("/v1/model-calls", json={})
        openai_error = await http.post("/v1/chat/completions", json={})
        anthropic_error = await http.post(
            "/v1/messages",
            json={"model": "keel-auto", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert keel_error.status_code == 422
    assert set(keel_error.json()["error"]) == {"type", "message", "details"}
    # The providers answer bad input with 400 and their own body shapes.
    assert openai_error.status_code == 400
    assert set(openai_error.json()["error"]) == {"type", "message", "param", "code"}
    assert openai_error.json()["error"]["param"] in ("body.model", "body.messages")
    assert anthropic_error.status_code == 400
    body = anthropic_error.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]


async def test_langchain_chat_openai_works_unchanged(
    keel_url: str, caller: Caller, harness: ProviderHarness
) -> None:
    from langchain_openai import ChatOpenAI

    async with httpx.AsyncClient() as http:  # its own, closed here (the default is shared)
        chat = ChatOpenAI(
            base_url=f"{keel_url}/v1",
            api_key=caller.key,
            model="keel-auto",
            max_retries=0,
            http_async_client=http,
        )
        reply = await chat.ainvoke(_question())
        assert reply.content == harness.reply_text
        streamed = [str(chunk.content) async for chunk in chat.astream(_question())]
    assert "".join(streamed) == harness.reply_text
