"""The Keel HTTP API: `uvicorn --factory api.main:build` (what `keel up` runs)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry.sdk.trace import TracerProvider
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors
from api.routes import (
    agents,
    compat,
    costs,
    dashboard,
    documents,
    events,
    health,
    ingest,
    model_calls,
    rag,
    runs,
)
from keel import __version__
from keel.clients import Clients
from keel.settings import Settings, settings
from keel.telemetry import HTTP_LATENCY, HTTP_REQUESTS, configure_logging
from keel.tracing import instrument_app, process_tracer_provider, use_tracer_provider

DESCRIPTION = """Durable orchestration for AI agents on Temporal.

Every `/v1` route needs `Authorization: Bearer <key>`; the key decides the tenant.
Errors always have the body `{"error": {"type", "message", "details"}}`.
"""


class BodyLimit:
    """Reject bodies over `limit` bytes with 413, counting as they stream (no trust in headers)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "error": {
                    "type": "PayloadTooLarge",
                    "message": f"request body exceeds the limit of {self.limit} bytes",
                    "details": {"limit_bytes": self.limit},
                }
            },
            status_code=413,
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(
    config: Settings | None = None,
    *,
    clients: Clients | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """Build the app. Tests pass their own settings and clients (and a tracer provider to
    read the spans); `keel up` passes none, and the `OTEL_*` variables decide on tracing."""
    config = config or settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = clients is None
        app.state.clients = clients or await Clients.connect(config, lazy=True)
        try:
            yield
        finally:
            if owned:
                await app.state.clients.close()

    app = FastAPI(
        title="Keel",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Every route can answer these; each is the common error body.
        responses={
            400: {"model": errors.ErrorResponse, "description": "Malformed request body"},
            413: {"model": errors.ErrorResponse, "description": "Request body too large"},
            422: {"model": errors.ErrorResponse, "description": "Invalid request"},
        },
    )
    app.state.settings = config
    if clients is not None:
        app.state.clients = clients
    errors.install(app)
    if tracer_provider is None:
        tracer_provider = process_tracer_provider()
    else:
        use_tracer_provider(tracer_provider)
    instrument_app(app, tracer_provider)
    app.include_router(health.router)
    app.include_router(runs.router)
    app.include_router(events.router)
    app.include_router(model_calls.router)
    app.include_router(compat.router)
    app.include_router(costs.router)
    app.include_router(dashboard.router)
    app.include_router(ingest.router)
    app.include_router(documents.router)
    app.include_router(rag.router)
    app.include_router(agents.router)

    app.add_middleware(Measure)
    app.add_middleware(BodyLimit, limit=config.max_request_bytes)
    return app


class Measure:
    """Request counts and latency by route, as plain ASGI: `@app.middleware("http")` runs each
    request through an extra task and stream, about a millisecond a request here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], path, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], path).observe(time.perf_counter() - started)


def build() -> FastAPI:
    """The app as uvicorn serves it: settings from the environment, JSON logs."""
    config = settings()
    configure_logging(level=config.log_level, json=config.log_json)
    return create_app(config)
