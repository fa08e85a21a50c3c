"""Liveness, readiness and metrics: the routes an orchestrator and Prometheus call."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ClientsDep
from keel.health import Readiness, readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving (no dependency is checked)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(clients: ClientsDep) -> JSONResponse:
    """Temporal, PostgreSQL and Redis each checked; 503 names the failing part."""
    report = await readiness(clients)
    return JSONResponse(report.model_dump(), status_code=200 if report.ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
