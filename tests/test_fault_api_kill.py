"""Fault: the API is SIGKILLed while it waits on durable runs (three RAG queries asked with a
wait, an agent run in flight). The runs live in Temporal, not in the API: they complete, a
new API process lists them and serves their results, and nothing ran twice.

Every run is held at its model call (the harness answers only when the test says) so the
kill lands while the API is still waiting; workers and API are processes of their own.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest

from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.settings import Settings
from tests.conftest import Caller
from tests.support.agents import RoleScript, answer, ledger, plan, verdict
from tests.support.faults import (
    NO_CACHES,
    Fleet,
    Tally,
    ask,
    doubled_answers,
    eventually,
    rag_query,
    replies,
    wait_run,
)
from tests.support.provider_harness import ProviderHarness, RecordedRequest
from tests.support.rag_corpus import seed

pytestmark = pytest.mark.timeout(240)
QUERIES = 3


async def _rag_runs(http: httpx.AsyncClient, caller: Caller) -> list[str]:
    """The tenant's RAG runs, as a client that lost its connection would find them."""
    listed = await http.get("/v1/runs", params={"feature": "rag"}, headers=caller.headers)
    assert listed.status_code == 200, listed.text
    return [run["id"] for run in listed.json()["runs"]]


async def test_runs_waited_on_by_a_killed_api_complete_and_a_new_api_serves_them(
    clients: Clients,
    gw_settings: Settings,
    harness: ProviderHarness,
    caller: Caller,
    tmp_path: Path,
) -> None:
    await seed(clients.engine, await ensure_tenant(clients.engine, caller.tenant))
    script = RoleScript(
        planner=[plan(("researcher", "Find the vacation allowance."))],
        researcher=[answer("New employees get 25 days of paid vacation.")],
        critic=[verdict(True, "supported")],
    )
    answer_of = replies(script)
    release = threading.Event()

    def held(request: RecordedRequest) -> str:
        release.wait(120)
        return answer_of(request)

    harness.reply_fn = held
    # A held answer is a slow provider, not a dead one: longer than the hold.
    config = gw_settings.model_copy(update={"provider_timeout_seconds": 120.0})
    fleet = await Fleet(config, tmp_path, NO_CACHES).start()
    tally = Tally("API SIGKILLed while it waits on RAG runs, an agent run in flight")
    try:
        async with httpx.AsyncClient(base_url=fleet.url, timeout=120) as http:
            waiting = [
                asyncio.create_task(ask(http, caller.headers, "rag", "/v1/rag/query", rag_query(n)))
                for n in range(QUERIES)
            ]
            started = await http.post(
                "/v1/agent-runs", json={"task": "How many vacation days?"}, headers=caller.headers
            )
            assert started.status_code == 202, started.text
            agent_id = started.json()["id"]
            await eventually(
                lambda: len(harness.requests) >= QUERIES + 1,
                within=120,
                what="every run reached its model call",
            )
            await fleet.kill_api()
            cut = await asyncio.gather(*waiting)
        # The waiting clients lost their connection (and never saw a run id) ...
        assert all(o.status == "lost" and not o.id for o in cut), cut
        release.set()

        # ... but not their runs: a new API process finds them and serves their results.
        async with httpx.AsyncClient(base_url=fleet.url, timeout=60) as http:
            found = await _rag_runs(http, caller)
            for _ in range(100):  # visibility trails the starts by a moment
                if len(found) >= QUERIES:
                    break
                await asyncio.sleep(0.2)
                found = await _rag_runs(http, caller)
            assert len(found) == QUERIES, found  # none lost, none started twice
            for rid in found:
                tally.add(await wait_run(http, caller.headers, "rag", rid, within=90))
            tally.add(await wait_run(http, caller.headers, "agent", agent_id, within=90))
    finally:
        release.set()
        fleet.stop()

    rag, agent = tally.outcomes[:QUERIES], tally.outcomes[-1]
    assert all("25 days" in o.result["answer"] for o in rag), rag
    assert agent.result["status"] == "accepted", agent.result
    rows = await ledger(clients, agent_id)
    assert len(rows) == agent.result["llm_calls"] == 3 and {r["status"] for r in rows} == {"ok"}
    # Each run's model calls reached the provider once: held, released, answered.
    assert len(harness.requests) == QUERIES + 3
    tally.duplicated = await doubled_answers(clients, tally)
    tally.check()
