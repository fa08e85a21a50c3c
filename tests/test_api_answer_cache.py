"""Exact answer-cache hits answered by the API without a workflow: the same key the workflow
uses, a ledger row that says which entry answered and survives a SIGKILL, and a document
change that turns the next ask back into a durable run."""

from __future__ import annotations

import asyncio
import sys
import uuid

import httpx
import pytest
from sqlalchemy import text
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.store import ChunkRecord, upsert_document
from keel.app.processes import free_port
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.settings import Settings
from tests.conftest import Caller
from tests.support.rag_corpus import seed
from tests.support.worker_process import REPO, worker_env

QUESTION = "How many vacation days do new employees get?"


@pytest.fixture
async def seeded(clients: Clients, caller: Caller) -> Caller:
    await seed(clients.engine, await ensure_tenant(clients.engine, caller.tenant))
    return caller


async def _ledger(clients: Clients, served: str) -> list[tuple[str, str | None, str | None]]:
    async with clients.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT cache_layer, cache_key, cache_entry FROM llm_calls WHERE workflow_id = :w"
            ),
            {"w": served},
        )
        return [(r[0], r[1], r[2]) for r in rows]


async def test_exact_hit_is_answered_without_a_workflow_and_ledgered(
    api: httpx.AsyncClient, workers: list[Worker], clients: Clients, seeded: Caller
) -> None:
    first = await api.post("/v1/rag/query", json={"question": QUESTION}, headers=seeded.headers)
    assert first.status_code == 200, first.text
    assert first.json()["result"]["cache_layer"] == "none"
    costs_before = (await api.get("/v1/costs", headers=seeded.headers)).json()["cache_hits"]

    again = await api.post("/v1/rag/query", json={"question": QUESTION}, headers=seeded.headers)
    body = again.json()
    assert body["result"]["cache_layer"] == "answer_exact"
    assert body["result"]["answer"] == first.json()["result"]["answer"]
    assert body["id"].startswith("rag-hit-")
    with pytest.raises(RPCError):  # no workflow was started for the hit
        await clients.temporal.get_workflow_handle(body["id"]).describe()
    [(layer, key, entry)] = await _ledger(clients, body["id"])
    assert layer == "exact" and key is not None and key.startswith("keel:rag:answer:")
    assert entry  # the id the answer was stored under
    costs = (await api.get("/v1/costs", headers=seeded.headers)).json()
    assert costs["cache_hits"] == costs_before + 1

    # A paraphrase is a semantic hit, served here too, and says which entry answered.
    near = await api.post(
        "/v1/rag/query", json={"question": QUESTION.lower().rstrip("?")}, headers=seeded.headers
    )
    assert near.json()["result"]["cache_layer"] == "answer_semantic", near.text
    assert near.json()["result"]["answer"] == first.json()["result"]["answer"]
    assert near.json()["id"].startswith("rag-hit-")
    [(layer, key, entry)] = await _ledger(clients, near.json()["id"])
    assert layer == "semantic" and key is not None and key.startswith("semantic_cache:")

    # Other filters are another scope: no hit, a workflow runs.
    scoped = await api.post(
        "/v1/rag/query",
        json={"question": QUESTION, "filters": {"departments": ["HR"]}},
        headers=seeded.headers,
    )
    assert scoped.json()["result"]["cache_layer"] == "none"
    assert not scoped.json()["id"].startswith("rag-hit-")

    # A new document bumps the corpus generation: the next ask is a durable run again.
    vector = [1.0] + [0.0] * 383
    await upsert_document(
        clients.engine,
        tenant_id=await ensure_tenant(clients.engine, seeded.tenant),
        source="new-doc",
        title="New",
        metadata={},
        content_hash="new",
        chunks=[
            ChunkRecord(
                position=0, text="new text", token_count=2, embedding=vector, windows=[vector]
            )
        ],
    )
    after = await api.post("/v1/rag/query", json={"question": QUESTION}, headers=seeded.headers)
    assert after.json()["result"]["cache_layer"] != "answer_exact"  # (the model call may hit)
    assert not after.json()["id"].startswith("rag-hit-")


async def test_hit_ledger_row_survives_the_api_being_killed_after_answering(
    workers: list[Worker], clients: Clients, settings: Settings, seeded: Caller
) -> None:
    port = free_port()
    env = {**worker_env(settings), "KEEL_PORTS__API": str(port), "PYTHONPATH": str(REPO)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.main:build",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        cwd=REPO,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            for _ in range(200):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            miss = await http.post(
                "/v1/rag/query", json={"question": QUESTION}, headers=seeded.headers
            )
            assert miss.status_code == 200, miss.text
            hit = await http.post(
                "/v1/rag/query", json={"question": QUESTION}, headers=seeded.headers
            )
            process.kill()  # SIGKILL the moment the answer is in: no shutdown, no flush
            served = hit.json()["id"]
            assert hit.json()["result"]["cache_layer"] == "answer_exact"
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    assert [row[0] for row in await _ledger(clients, served)] == ["exact"]
    assert uuid.UUID(served.removeprefix("rag-hit-"))
