"""`POST /v1/rag/query`, `GET /v1/runs/{id}` for RAG runs, and `keel ask` against a live API."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.worker import Worker

from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.settings import Settings
from tests.conftest import Caller, serve_api
from tests.support.rag_corpus import seed

QUESTION = "How many vacation days do new employees get?"


@pytest.fixture
async def seeded(clients: Clients, caller: Caller) -> Caller:
    await seed(clients.engine, await ensure_tenant(clients.engine, caller.tenant))
    return caller


async def test_query_answers_and_the_run_belongs_to_the_tenant(
    api: httpx.AsyncClient, workers: list[Worker], seeded: Caller, other_caller: Caller
) -> None:
    response = await api.post(
        "/v1/rag/query",
        json={"question": QUESTION, "tenant": seeded.tenant},
        headers=seeded.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"]["status"] == "answered"
    assert "25 days" in body["result"]["answer"]
    assert body["result"]["citations"][0]["title"] == "Annual leave policy"

    run = await api.get(f"/v1/runs/{body['id']}", headers=seeded.headers)
    assert run.status_code == 200
    assert run.json()["status"] == "completed"
    assert run.json()["kind"] == "RagQueryWorkflow" and run.json()["feature"] == "rag"
    assert run.json()["result"]["answer"] == body["result"]["answer"]
    assert (
        await api.get(f"/v1/runs/{body['id']}", headers=other_caller.headers)
    ).status_code == 404


async def test_a_slow_answer_returns_the_run_id_to_poll(
    api: httpx.AsyncClient, workers: list[Worker], seeded: Caller
) -> None:
    response = await api.post(
        "/v1/rag/query",
        json={"question": "How long is parental leave?", "wait_seconds": 0},
        headers=seeded.headers,
    )
    assert response.status_code == 202
    run_id = response.json()["id"]
    assert response.json()["result_url"] == f"/v1/runs/{run_id}"
    for _ in range(100):
        run = (await api.get(f"/v1/runs/{run_id}", headers=seeded.headers)).json()
        if run["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert run["status"] == "completed"
    assert "16 weeks" in run["result"]["answer"]


async def test_query_refuses_bad_requests_with_typed_errors(
    api: httpx.AsyncClient, caller: Caller
) -> None:
    wrong_tenant = await api.post(
        "/v1/rag/query",
        json={"question": QUESTION, "tenant": "someone-else"},
        headers=caller.headers,
    )
    assert wrong_tenant.status_code == 403
    assert wrong_tenant.json()["error"]["details"] == {"tenant": caller.tenant}
    for body in (
        {"question": "   "},
        {"question": "a\x00b"},
        {"question": QUESTION, "filters": {"date_from": "2024-02-01", "date_to": "2023-01-01"}},
    ):
        refused = await api.post("/v1/rag/query", json=body, headers=caller.headers)
        assert refused.status_code == 422, body
        assert refused.json()["error"]["type"] == "InvalidInput"
    assert (await api.post("/v1/rag/query", json={"question": QUESTION})).status_code == 401


@pytest.fixture
def live_api(settings: Settings) -> Iterator[str]:
    with serve_api(settings) as url:
        yield url


async def test_keel_ask_prints_the_answer_citations_and_sources(
    live_api: str, workers: list[Worker], seeded: Caller, tmp_path: Path
) -> None:
    keel = str(Path(sys.executable).parent / "keel")
    env = {"PATH": str(Path(sys.executable).parent), "KEEL_DATA_DIR": str(tmp_path)}
    result = await asyncio.to_thread(
        subprocess.run,
        [keel, "ask", QUESTION, "--show-sources", "--api-url", live_api, "--tenant", seeded.tenant],
        capture_output=True,
        text=True,
        env={**env, "KEEL_API_KEY": seeded.key, "COLUMNS": "200"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "New employees receive 25 days" in result.stdout
    assert "[Source 1] Annual leave policy" in result.stdout
    assert "Travel expense policy" in result.stdout or "Remote work" in result.stdout  # table
    assert "answered" in result.stdout

    wrong = await asyncio.to_thread(
        subprocess.run,
        [keel, "ask", QUESTION, "--api-url", live_api, "--tenant", "nope"],
        capture_output=True,
        text=True,
        env={**env, "KEEL_API_KEY": seeded.key},
        check=False,
    )
    assert wrong.returncode == 1 and "403 Forbidden" in wrong.stderr
    no_key = await asyncio.to_thread(
        subprocess.run,
        [keel, "ask", QUESTION, "--api-url", live_api],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert no_key.returncode == 1 and "no API key" in no_key.stderr
