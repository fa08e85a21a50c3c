"""OpenTelemetry traces: one trace from the HTTP request through the workflow, each activity
and the provider call.

Off unless the standard variables ask for it: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, `OTEL_TRACES_EXPORTER` not `none`, and
`OTEL_SDK_DISABLED` not `true`. The exporter is OTLP over HTTP and reads every other `OTEL_*`
variable itself (headers, timeout, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`). Pieces:
Temporal's `TracingInterceptor` on the client (the API's and the workers', which inherit it),
FastAPI's instrumentation on the app, a client span around each provider call
(`provider_span`: the provider SDKs now send through `httpx2`, which httpx's instrumentation
does not see), and `annotate` for Keel's own attributes (tenant, feature, model, cache
layer, tokens, cost).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor


def tracing_requested(environ: dict[str, str] | None = None) -> bool:
    """Whether the `OTEL_*` variables ask for traces to be exported."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


_ACTIVE: list[TracerProvider] = []


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """The provider Keel's own spans (`provider_span`) go to in this process."""
    _ACTIVE[:] = [provider] if provider is not None else []


@lru_cache(maxsize=1)
def process_tracer_provider() -> TracerProvider | None:
    """This process's provider exporting over OTLP, or None when tracing is off. The service
    name is `OTEL_SERVICE_NAME` (the worker sets a default per queue)."""
    if not tracing_requested():
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    name = os.environ.get("OTEL_SERVICE_NAME", "keel")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    use_tracer_provider(provider)
    return provider


def temporal_interceptors(provider: TracerProvider | None) -> list[Interceptor]:
    """The client interceptors that carry a trace into workflows and activities (workers built
    on the client inherit them)."""
    if provider is None:
        return []
    return [TracingInterceptor(provider.get_tracer("keel.temporal"))]


def instrument_app(app: Any, provider: TracerProvider | None) -> None:
    """Trace the API's requests (health and metrics probes excluded)."""
    if provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics"
    )


def annotate(**attributes: str | int | float | bool | None) -> None:
    """Put Keel's attributes (`keel.*`, `gen_ai.*`) on the current span; a no-op untraced."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    for key, value in attributes.items():
        if value is not None:
            span.set_attribute(key.replace("__", "."), value)


@contextmanager
def provider_span(provider: str, model: str) -> Iterator[None]:
    """A client span around one provider call (a no-op untraced)."""
    if not _ACTIVE:
        yield
        return
    tracer = _ACTIVE[0].get_tracer("keel.providers")
    with tracer.start_as_current_span(
        f"{provider} {model}",
        kind=trace.SpanKind.CLIENT,
        attributes={"gen_ai.system": provider, "gen_ai.request.model": model},
    ):
        yield
