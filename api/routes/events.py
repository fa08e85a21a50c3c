"""`GET /v1/runs/{id}/events`: a running run as server-sent events.

Events: `progress` (the run's own progress query: stage and timings of a RAG query, counts of
an ingestion job, turns and the pending escalation of an agent run; sent when it changes),
`token` (a piece of the answer as the provider streams it, with its attempt number), and one
`final` (status, and the result or the typed error) before the stream ends. Every event's id
is the position in the run's token stream; a client that reconnects with `Last-Event-ID`
gets the tokens after it and the current progress (`activities.events` says why the stream
is a view, not the record: the durable result stays in history).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError

from activities.events import read_events
from activities.gateway_steps import REDIS_DOWN
from api.deps import ClientsDep, PrincipalDep
from api.errors import ApiError, failure_body
from api.routes.runs import ERRORS, SERVED_BY_API, RunId, owned_run, progress_of, served_by_api
from keel.clients import Clients

router = APIRouter(prefix="/v1/runs", tags=["runs"])

EVENT_ID = re.compile(r"^(0|\d+-\d+)$")
POLL_MS = 250
KEEPALIVE_POLLS = 40  # a comment line every ~10 s of silence keeps proxies from closing


def sse(kind: str, data: Any, ident: str) -> str:
    return f"id: {ident}\nevent: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


async def _outcome(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    try:
        result = await handle.result(follow_runs=False)
    except WorkflowFailureError as exc:
        return {"status": "failed", "error": failure_body(exc)}
    return {"status": "completed", "result": result}


async def _stream(
    request: Request, clients: Clients, handle: WorkflowHandle[Any, Any], cursor: str
) -> AsyncIterator[str]:
    outcome = asyncio.create_task(_outcome(handle))
    last_progress: Any = None
    quiet = 0
    try:
        while not await request.is_disconnected():
            sent = False
            if not outcome.done():
                progress = await progress_of(handle)
                if progress is not None and progress != last_progress:
                    last_progress = progress
                    yield sse("progress", progress, cursor)
                    sent = True
            try:
                events = await read_events(
                    clients.redis, handle.id, cursor, block_ms=0 if outcome.done() else POLL_MS
                )
            except REDIS_DOWN:  # the view is gone; the run and its final event are not
                events = []
                await asyncio.sleep(POLL_MS / 1000)
            for ident, kind, data in events:
                cursor = ident
                yield sse(kind, data, ident)
                sent = True
            if outcome.done() and not events:
                yield sse("final", outcome.result(), cursor)
                return
            quiet = 0 if sent else quiet + 1
            if quiet >= KEEPALIVE_POLLS:
                quiet = 0
                yield ": keep-alive\n\n"
    finally:
        outcome.cancel()


@router.get(
    "/{run_id}/events",
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
    response_class=StreamingResponse,
)
async def run_events(
    run_id: RunId,
    request: Request,
    principal: PrincipalDep,
    clients: ClientsDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Server-sent events of a run: `progress`, `token` (the answer while it is generated),
    then `final`. Reconnect with `Last-Event-ID` to get what was missed."""
    cursor = last_event_id or "0"
    if not EVENT_ID.match(cursor):
        raise ApiError(
            400,
            "InvalidInput",
            f"Last-Event-ID {cursor!r} is not an event id of this stream (like 1733300000000-0)",
            details={"field": "Last-Event-ID"},
        )
    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    if run_id.startswith(SERVED_BY_API):  # answered by the API itself: it is already over
        served = await served_by_api(clients, principal.tenant_id, run_id)
        if served is None:
            raise ApiError(404, "NotFound", f"run {run_id!r} not found", details={"id": run_id})
        final = sse("final", {"status": "completed", "served_by": "api"}, cursor)
        return StreamingResponse(iter([final]), media_type="text/event-stream", headers=headers)
    try:
        handle, _ = await owned_run(clients, principal.tenant, run_id)
    except RPCError as exc:
        raise ApiError(503, "DependencyDown", f"Temporal is unreachable: {exc}") from exc
    return StreamingResponse(
        _stream(request, clients, handle, cursor), media_type="text/event-stream", headers=headers
    )
