"""With Redis stopped, queries and model calls still answer: uncached, and a RAG answer says
so; `/readyz` names Redis. A real Redis of the test's own is started and stopped, so the
session's Redis stays up for every other test; Temporal and Postgres are the session's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from keel.app.devstack import DevStack
from keel.app.processes import free_port
from keel.auth import ensure_tenant
from keel.clients import Clients, connect_redis
from keel.settings import Ports, Settings
from tests.conftest import Caller, running_workers
from tests.support.rag_corpus import seed

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def dead_redis_clients(
    tmp_path: Path, clients: Clients, settings: Settings
) -> AsyncIterator[Clients]:
    own = settings.model_copy(
        update={"data_dir": tmp_path, "ports": Ports(redis=free_port(), postgres=free_port())}
    )
    service = DevStack(own, headless=True)._redis()
    service.start(own.host)
    service.wait_ready(10)
    redis = connect_redis(own)
    assert await redis.ping()
    service.stop()  # stopped for real: every command now fails to connect
    yield Clients(temporal=clients.temporal, engine=clients.engine, redis=redis)
    await redis.aclose()


async def test_queries_and_model_calls_answer_without_redis(
    dead_redis_clients: Clients, settings: Settings, caller: Caller
) -> None:
    await seed(
        dead_redis_clients.engine, await ensure_tenant(dead_redis_clients.engine, caller.tenant)
    )
    app = create_app(settings, clients=dead_redis_clients)
    async with (
        running_workers(dead_redis_clients, settings),
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://k") as api,
    ):
        ready = await api.get("/readyz")
        assert ready.status_code == 503
        assert {p["name"]: p["healthy"] for p in ready.json()["parts"]}["redis"] is False

        for _ in range(2):  # the second time would have been a cache hit
            query = await api.post(
                "/v1/rag/query",
                json={"question": "How many vacation days do new employees get?"},
                headers=caller.headers,
            )
            assert query.status_code == 200, query.text
            answer = query.json()["result"]
            assert answer["status"] == "answered" and "25 days" in answer["answer"]
            assert answer["cache_layer"] not in ("answer_exact", "answer_semantic")
            assert any("answer cache unavailable" in n for n in answer["notes"]), answer["notes"]

        call = await api.post(
            "/v1/model-calls",
            json={"call": {"messages": [{"role": "user", "content": "Summarise: refunds."}]}},
            headers=caller.headers,
        )
        assert call.status_code == 200, call.text
        assert call.json()["result"]["ok"] is True
