"""Document jobs: the extractor over each document, at most `concurrency` at a time, with
progress and partial results while it runs and a failed document that does not fail the job."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from temporalio.worker import Worker

from agents.registry import role_spec
from api.main import create_app
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.documents import DocumentJobRequest
from keel.contracts.gateway import CallContext
from keel.runs import gateway_config
from keel.settings import Settings
from tests.conftest import Caller, running_workers
from tests.support.agents import last_user_text, ledger, seed_documents
from tests.support.provider_harness import ProviderHarness, RecordedRequest
from workflows.document_jobs import DocumentJobWorkflow


class Extractor:
    """Answers as the extractor would; the 4th request onwards waits for `gate`.

    Policy 2's replies are never JSON (that document must fail after one repair attempt).
    Counts how many requests are answered at once.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = self.peak = self.seen = 0
        self.gate = threading.Event()

    def __call__(self, request: RecordedRequest) -> str:
        document = last_user_text(request.body)
        if "Your reply could not be used" in document:  # the repair turn
            document = json.dumps(request.body["messages"])
        with self.lock:
            self.active += 1
            self.seen += 1
            self.peak = max(self.peak, self.active)
            waits = self.seen > 3
        try:
            if waits:
                self.gate.wait(60)
            else:
                time.sleep(0.3)
            if "Policy 2 " in document:
                return "Sorry, I cannot do JSON today."
            days = re.search(r"allows (\d+) days", document)
            return json.dumps(
                {
                    "summary": "A leave policy.",
                    "key_points": [f"{days.group(1) if days else '?'} days of leave"],
                }
            )
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture
def harness() -> Iterator[ProviderHarness]:
    with ProviderHarness() as started:
        yield started


@pytest.fixture
def gw_settings(settings: Settings, harness: ProviderHarness) -> Settings:
    return settings.model_copy(
        update={
            "anthropic_api_key": SecretStr("test-anthropic"),
            "anthropic_base_url": harness.anthropic_base_url,
            "provider_timeout_seconds": 30.0,
        }
    )


@pytest.fixture
async def job_api(
    clients: Clients, gw_settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, list[Worker]]]:
    app = create_app(gw_settings, clients=clients)
    async with (
        running_workers(clients, gw_settings) as workers,
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://keel.test"
        ) as client,
    ):
        yield client, workers


async def _poll(check: Any, within: float = 60.0) -> Any:
    for _ in range(int(within / 0.1)):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("condition never met")


async def test_document_job_fans_out_with_bounded_concurrency_and_partial_results(
    clients: Clients,
    job_api: tuple[httpx.AsyncClient, list[Worker]],
    harness: ProviderHarness,
    caller: Caller,
) -> None:
    api, _ = job_api
    extractor = Extractor()
    harness.reply_fn = extractor
    tenant_id = await ensure_tenant(clients.engine, caller.tenant)
    prefix = f"job-{uuid.uuid4().hex[:6]}/"
    await seed_documents(clients, tenant_id, prefix, count=5)
    await seed_documents(clients, tenant_id, "elsewhere/", count=1)  # not selected

    started = await api.post(
        "/v1/document-jobs",
        headers=caller.headers,
        json={"filter": {"source_prefix": prefix}, "concurrency": 2},
    )
    assert started.status_code == 202, started.text
    wid = started.json()["id"]

    async def partial() -> list[dict[str, Any]]:
        body = (await api.get(f"/v1/document-jobs/{wid}/results", headers=caller.headers)).json()
        return list(body["results"])

    first = await _poll(partial)

    async def progressed() -> dict[str, Any] | None:
        # A result row is written by its activity before the job workflow counts it.
        body: dict[str, Any] = (await api.get(f"/v1/runs/{wid}", headers=caller.headers)).json()
        counted = body.get("progress") or {}
        return body if counted.get("done", 0) + counted.get("failed", 0) >= 1 else None

    running = await _poll(progressed)
    assert running["status"] == "running"
    progress = running["progress"]
    assert 1 <= progress["done"] + progress["failed"] < 5
    assert progress["in_flight"] <= 2
    assert 1 <= len(first) < 5

    extractor.gate.set()

    async def finished() -> dict[str, Any] | None:
        body = (await api.get(f"/v1/runs/{wid}", headers=caller.headers)).json()
        return body if body["status"] != "running" else None

    done = await _poll(finished)
    assert done["status"] == "completed"
    assert (done["result"]["done"], done["result"]["failed"]) == (4, 1)
    results = await partial()
    assert len(results) == 5
    ok = [r for r in results if r["ok"]]
    assert all(r["result"]["key_points"][0].endswith("days of leave") for r in ok)
    [failed] = [r for r in results if not r["ok"]]
    assert "invalid output" in failed["error"]
    assert extractor.peak <= 2  # never more than `concurrency` documents at once
    # Five first attempts and one repair attempt, each paid once and costed in the ledger.
    assert len(harness.requests) == 6
    spent = await ledger(clients, wid)
    assert len(spent) == 6
    assert float(sum(r["cost_usd"] for r in spent)) == pytest.approx(done["result"]["cost_usd"])


async def test_a_long_job_continues_as_new_between_pages_and_counts_every_document(
    clients: Clients, settings: Settings, workers: list[Worker], tenant: str
) -> None:
    # The offline provider never answers the extractor's JSON: every document fails, which
    # is still a processed document. Pages of two and a tiny history budget force several
    # continue-as-new hops.
    tenant_id = await ensure_tenant(clients.engine, tenant)
    await seed_documents(clients, tenant_id, "long/", count=7)
    wid = f"docjob-{uuid.uuid4().hex[:8]}"
    result = await clients.temporal.execute_workflow(
        DocumentJobWorkflow.run,
        DocumentJobRequest(
            context=CallContext(tenant=tenant, tenant_id=str(tenant_id), feature="docs"),
            gateway=gateway_config(settings),
            role=role_spec("extractor"),
            page_size=2,
            concurrency=2,
            history_event_budget=30,
        ),
        id=wid,
        task_queue=settings.task_queue_cpu,
    )
    assert (result.done, result.failed) == (0, 7)
    assert result.continued >= 2
    async with clients.engine.connect() as conn:
        stored = (
            await conn.execute(
                text(
                    "SELECT count(DISTINCT document_id) FROM agent_document_results "
                    "WHERE job_id = :j"
                ),
                {"j": wid},
            )
        ).scalar_one()
    assert stored == 7
