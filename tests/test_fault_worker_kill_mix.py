"""Fault: each worker SIGKILLed in turn (the gpu one, then the cpu one) while an ingestion job,
a stream of RAG queries and an agent run are all in flight. New workers take over: the job
stores every chunk once, every query is answered once, the agent run finishes without a
model call repeated.

Workers and API are processes of their own. The agent run is held in a tool call (a page
that answers when the test says) so the cpu worker dies with it mid-call; that call
heartbeats, so a new worker retries it within seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.ingest import IngestResult
from keel.settings import Settings
from tests.conftest import Caller
from tests.support.agents import RoleScript, answer, ledger, plan, tool, verdict
from tests.support.faults import (
    NO_CACHES,
    Fleet,
    Outcome,
    Tally,
    ask,
    chunk_faults,
    doubled_answers,
    rag_query,
    replies,
    wait_run,
)
from tests.support.ingest_corpus import expected_chunks, long_text, mixed_corpus, start_job
from tests.support.provider_harness import ProviderHarness
from tests.support.rag_corpus import seed
from tests.support.slow_page import slow_page
from tests.test_ingest_kill import _interruptions, _progress

pytestmark = pytest.mark.timeout(420)

MIN_ANSWERS = 3


async def _queries(
    http: httpx.AsyncClient, caller: Caller, stop: asyncio.Event, out: list[Outcome]
) -> None:
    # A query in flight when its worker dies waits out a timeout before another worker takes
    # over: 10 s for a workflow task, the retrieval budget for a search, and 120 s for a
    # provider call (it sends no heartbeats), hence the long wait per request.
    # Once stopped, it still asks until it has MIN_ANSWERS, however fast the job and the
    # agent finished (the checks are on every answer, and on those in flight at the kills).
    for n in itertools.count():
        if stop.is_set() and len(out) >= MIN_ANSWERS:
            return
        out.append(
            await ask(http, caller.headers, "rag", "/v1/rag/query", rag_query(n), within=200)
        )


async def _batches(clients: Clients, job_id: str, at_least: int) -> dict[str, Any]:
    progress: dict[str, Any] = {}
    for _ in range(1200):
        progress = await _progress(clients, job_id)
        if progress.get("batches_done", 0) >= at_least:
            return progress
        await asyncio.sleep(0.1)
    raise AssertionError(f"the job did not reach {at_least} batches: {progress}")


async def test_killing_each_worker_during_a_mix_loses_and_repeats_nothing(
    clients: Clients,
    gw_settings: Settings,
    harness: ProviderHarness,
    caller: Caller,
    tmp_path: Path,
) -> None:
    await seed(clients.engine, await ensure_tenant(clients.engine, caller.tenant))
    files = mixed_corpus(110, seed=71)
    for k in range(3):
        files[f"long/manual-{k}.txt"] = long_text(900, seed=80 + k).encode()
    per_source = expected_chunks(files)
    ingest_tenant = f"t-{uuid.uuid4().hex[:12]}"
    tally = Tally("cpu and gpu workers SIGKILLed in turn during ingestion, RAG queries, agent run")
    queries: list[Outcome] = []
    with slow_page() as page:
        script = RoleScript(
            planner=[plan(("researcher", "Read the refund page."))],
            researcher=[
                tool("http_get", url=f"http://{page.address}/refunds"),
                answer("Refunds are accepted within 30 days."),
            ],
            critic=[verdict(True, "supported by the page")],
        )
        harness.reply_fn = replies(script)
        hosts = json.dumps([page.address])
        api_env = {
            **NO_CACHES,
            "KEEL_AGENTS__HTTP_ALLOW_HOSTS": hosts,
            "KEEL_AGENTS__HTTP_PRIVATE_HOSTS": hosts,
            # A search or embedding that died with its worker is given up after this budget
            # (the query then answers from the other search path): 10 s instead of 30.
            "KEEL_RAG__RETRIEVAL_TIMEOUT_SECONDS": "10",
        }
        fleet = await Fleet(gw_settings, tmp_path, api_env).start()
        try:
            async with httpx.AsyncClient(base_url=fleet.url, timeout=200) as http:
                job_id = await start_job(
                    clients,
                    gw_settings,
                    ingest_tenant,
                    files,
                    batch_files=8,
                    max_concurrent_batches=2,
                    heartbeat_seconds=3,
                )
                started = await http.post(
                    "/v1/agent-runs",
                    json={"task": "How long is the refund window?"},
                    headers=caller.headers,
                )
                assert started.status_code == 202, started.text
                agent_id = started.json()["id"]
                stop = asyncio.Event()
                stream = asyncio.create_task(_queries(http, caller, stop, queries))

                before = await _batches(clients, job_id, 2)
                assert await asyncio.to_thread(page.first_arrived.wait, 90), "no tool call"
                kills = [time.monotonic()]
                fleet.kill_worker("gpu")  # mid-embedding: the batch heartbeats stop
                after_gpu = await _batches(clients, job_id, before["batches_done"] + 1)
                kills.append(time.monotonic())
                fleet.kill_worker("cpu")  # with the agent's fetch and the job's workflow
                assert after_gpu["files_done"] < after_gpu["files_total"] == len(files)
                page.release.set()

                result: IngestResult = await asyncio.wait_for(
                    clients.temporal.get_workflow_handle(job_id, result_type=IngestResult).result(),
                    timeout=240,
                )
                agent = await wait_run(http, caller.headers, "agent", agent_id, within=200)
                stop.set()
                await stream
        finally:
            fleet.stop()

    assert result.failures == []
    assert (result.documents_stored, result.chunks_written) == (
        len(per_source),
        sum(per_source.values()),
    )
    lost_chunks, doubled_chunks = await chunk_faults(
        clients, await ensure_tenant(clients.engine, ingest_tenant), per_source
    )
    assert (lost_chunks, doubled_chunks) == (0, 0)
    assert agent.result["status"] == "accepted", agent.result
    assert agent.result["answer"] == "Refunds are accepted within 30 days."
    rows = await ledger(clients, agent_id)
    assert len(rows) == agent.result["llm_calls"] == 4  # none repeated by the new worker
    assert [script.count(r) for r in ("planner", "researcher", "critic")] == [1, 2, 1]
    assert page.hits == 2  # the fetch the dead worker held, retried once
    assert len(queries) >= MIN_ANSWERS
    assert all("25 days" in o.result.get("answer", "") for o in queries)
    caught = [[o for o in queries if o.in_flight(at)] for at in kills]
    assert all(caught), "a kill found no query in flight"
    print(
        "queries in flight at the kills took "
        f"{[round(o.ended - o.started, 1) for o in caught[0] + caught[1]]} s; "
        f"the job saw {await _interruptions(clients, job_id)} interruptions"
    )
    assert await _interruptions(clients, job_id) >= 1

    tally.add(Outcome("ingest", "completed", job_id), agent, *queries)
    tally.duplicated = await doubled_answers(clients, tally) + doubled_chunks
    tally.check()
