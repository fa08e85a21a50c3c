"""One trace for one RAG query: the HTTP request, the workflow start and run, each activity,
and the provider's HTTP call, with Keel's attributes on the provider span.

Real Temporal, Postgres and Redis; the provider is the local harness reached through the real
SDK; spans are collected by an in-memory exporter.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from api.main import create_app
from keel.auth import ensure_tenant
from keel.clients import Clients, connect_temporal
from keel.settings import Settings
from keel.tracing import temporal_interceptors, tracing_requested, use_tracer_provider
from tests.conftest import Caller, running_workers
from tests.support.rag_corpus import seed


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield provider, exporter
    finally:
        use_tracer_provider(None)


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _ancestors(spans: list[ReadableSpan], span: ReadableSpan) -> list[str]:
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    names, current = [], span
    while current.parent is not None and current.parent.span_id in by_id:
        current = by_id[current.parent.span_id]
        names.append(current.name)
    return names


async def test_one_rag_query_is_one_trace_from_http_to_the_provider(
    spans: tuple[TracerProvider, InMemorySpanExporter],
    clients: Clients,
    gw_settings: Settings,
    caller: Caller,
) -> None:
    provider, exporter = spans
    await seed(clients.engine, await ensure_tenant(clients.engine, caller.tenant))
    temporal = await connect_temporal(gw_settings, interceptors=temporal_interceptors(provider))
    traced = Clients(temporal=temporal, engine=clients.engine, redis=clients.redis)
    app = create_app(gw_settings, clients=traced, tracer_provider=provider)
    async with (
        running_workers(traced, gw_settings),
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://k") as api,
    ):
        response = await api.post(
            "/v1/rag/query",
            json={"question": f"How many vacation days do new employees get? {uuid.uuid4().hex}"},
            headers=caller.headers,
        )
    assert response.status_code == 200, response.text

    finished = list(exporter.get_finished_spans())
    [server] = [s for s in finished if s.name == "POST /v1/rag/query"]
    assert server.context is not None
    trace_id = server.context.trace_id
    ours = [s for s in finished if s.context is not None and s.context.trace_id == trace_id]
    names = {s.name for s in ours}
    for expected in (
        "StartWorkflow:RagQueryWorkflow",
        "RunWorkflow:RagQueryWorkflow",
        "RunActivity:rag_embed_query",
        "RunActivity:rag_vector_search",
        "RunActivity:rag_keyword_search",
        "RunActivity:rag_rerank",
        "RunActivity:provider_complete",
    ):
        assert expected in names, f"{expected} missing from the trace: {sorted(names)}"
    # The tree: the workflow start hangs under the HTTP request; each activity's run under
    # the workflow's scheduling of it, under the workflow; the provider's HTTP call under its
    # activity (Temporal's interceptor parents workflow-side spans on the workflow's start).
    assert "StartWorkflow:RagQueryWorkflow" in {s.name for s in _children(ours, server)}
    call = next(s for s in ours if s.name == "RunActivity:provider_complete")
    assert _ancestors(ours, call) == [
        "StartActivity:provider_complete",
        "StartWorkflow:RagQueryWorkflow",
        "POST /v1/rag/query",
    ]
    [sdk_call] = _children(ours, call)  # the provider's own call, a client span
    assert sdk_call.name.startswith("anthropic ") and sdk_call.kind.name == "CLIENT"
    attributes = dict(call.attributes or {})
    assert attributes["keel.tenant"] == caller.tenant
    assert attributes["keel.feature"] == "rag"
    assert attributes["gen_ai.system"] == "anthropic"
    assert int(attributes["gen_ai.usage.output_tokens"]) > 0  # type: ignore[arg-type]
    assert float(attributes["keel.cost_usd"]) > 0  # type: ignore[arg-type]
    assert attributes["keel.cache_layer"] == "none"


def test_tracing_is_off_unless_the_otel_variables_ask() -> None:
    assert not tracing_requested({})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert not tracing_requested(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}
    )
    assert not tracing_requested(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    )
