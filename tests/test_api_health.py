"""Liveness, readiness (each part by name) and metrics."""

from __future__ import annotations

from pathlib import Path

import httpx

from api.main import create_app
from keel.app.devstack import DevStack
from keel.app.processes import free_port
from keel.clients import Clients, connect_redis
from keel.settings import Ports, Settings


async def test_healthz(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_names_all_three_parts_healthy(api: httpx.AsyncClient) -> None:
    response = await api.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert {p["name"]: p["healthy"] for p in body["parts"]} == {
        "temporal": True,
        "postgres": True,
        "redis": True,
    }


async def test_readyz_reports_a_stopped_redis_by_name(
    tmp_path: Path, clients: Clients, settings: Settings
) -> None:
    # A real Redis of our own, started and then stopped, so the session's Redis stays up.
    own = settings.model_copy(
        update={"data_dir": tmp_path, "ports": Ports(redis=free_port(), postgres=free_port())}
    )
    stack = DevStack(own, headless=True)
    redis_service = stack._redis()
    redis_service.start(own.host)
    redis_service.wait_ready(10)
    redis = connect_redis(own)
    assert await redis.ping()
    redis_service.stop()

    mixed = Clients(temporal=clients.temporal, engine=clients.engine, redis=redis)
    app = create_app(settings, clients=mixed)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://keel.test"
    ) as api:
        response = await api.get("/readyz")
    await redis.aclose()
    assert response.status_code == 503
    parts = {p["name"]: p for p in response.json()["parts"]}
    assert parts["redis"]["healthy"] is False
    assert parts["redis"]["error"]
    assert parts["temporal"]["healthy"] and parts["postgres"]["healthy"]


async def test_metrics_exposes_request_counters(api: httpx.AsyncClient) -> None:
    await api.get("/healthz")
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert 'keel_http_requests_total{method="GET",route="/healthz",status="200"}' in response.text
