"""`GET /v1/runs/{id}/events`: a RAG run's progress and its answer's tokens, live, over a
real HTTP server; a client that reconnects with `Last-Event-ID` gets what it missed.

The provider harness streams the answer a word every 50 ms, so the first token arrives well
before the answer is whole. Real Temporal, Postgres and Redis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from temporalio.worker import Worker

from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.settings import Settings
from tests.conftest import Caller, serve_api
from tests.support.provider_harness import ProviderHarness
from tests.support.rag_corpus import seed

ANSWER = "New employees receive 25 days of paid vacation in their first year [Source 1]."
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def keel_url(gw_settings: Settings) -> Iterator[str]:
    with serve_api(gw_settings) as url:
        yield url


async def _events(
    http: httpx.AsyncClient, run_id: str, headers: dict[str, str], stop_after: int | None = None
) -> list[tuple[str, str, Any, float]]:
    """(id, kind, data, seconds since the request) of each event, until `final`."""
    out: list[tuple[str, str, Any, float]] = []
    started = time.perf_counter()
    async with http.stream("GET", f"/v1/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            if "event" in fields:
                data = json.loads(fields["data"])
                out.append((fields["id"], fields["event"], data, time.perf_counter() - started))
                if fields["event"] == "final" or (stop_after and len(out) >= stop_after):
                    break
            fields = {}
    return out


async def test_a_rag_run_streams_progress_tokens_and_its_final_answer(
    keel_url: str,
    gw_workers: list[Worker],
    clients: Clients,
    caller: Caller,
    harness: ProviderHarness,
) -> None:
    await seed(clients.engine, await ensure_tenant(clients.engine, caller.tenant))
    harness.reply_text = ANSWER
    harness.stream_delay = 0.05
    async with httpx.AsyncClient(base_url=keel_url, timeout=60) as http:
        started = await http.post(
            "/v1/rag/query",
            json={"question": "How many vacation days do new employees get?", "wait_seconds": 0},
            headers=caller.headers,
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        events = await _events(http, run_id, caller.headers)

        kinds = [kind for _, kind, _, _ in events]
        assert kinds[-1] == "final" and kinds.count("final") == 1
        final = events[-1][2]
        assert final["status"] == "completed"
        stages = {data.get("stage") for _, kind, data, _ in events if kind == "progress"}
        assert stages - {None}, "no progress event named a stage"
        tokens = [(data, at) for _, kind, data, at in events if kind == "token"]
        assert len(tokens) > 5  # word by word, not one blob
        text = "".join(d["text"] for d, _ in tokens if d["attempt"] == tokens[-1][0]["attempt"])
        assert text == ANSWER
        assert final["result"]["answer"] == ANSWER  # the durable result says the same
        first_token, answered = tokens[0][1], events[-1][3]
        assert first_token < answered - 0.3  # the answer was visible before it was whole

        # A client that lost the stream after the third token resumes after it.
        ids = [ident for ident, kind, _, _ in events if kind == "token"]
        third = ids[2]
        again = await _events(http, run_id, {**caller.headers, "Last-Event-ID": third})
        resumed = [data["text"] for _, kind, data, _ in again if kind == "token"]
        assert resumed == [d["text"] for d, _ in tokens[3:]]
        assert again[-1][1] == "final"

        bad = await http.get(
            f"/v1/runs/{run_id}/events", headers={**caller.headers, "Last-Event-ID": "x"}
        )
        assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["error"]["message"]


async def test_another_tenant_cannot_watch_a_run(
    keel_url: str, gw_workers: list[Worker], caller: Caller, other_caller: Caller
) -> None:
    async with httpx.AsyncClient(base_url=keel_url, timeout=60) as http:
        started = await http.post(
            "/v1/rag/query",
            json={"question": "What is the travel policy?", "wait_seconds": 0},
            headers=caller.headers,
        )
        run_id = started.json()["id"]
        watched = await http.get(f"/v1/runs/{run_id}/events", headers=other_caller.headers)
    assert watched.status_code == 404


async def test_keel_ask_streams_and_keel_runs_watch_follows(
    keel_url: str,
    gw_workers: list[Worker],
    clients: Clients,
    caller: Caller,
    harness: ProviderHarness,
) -> None:
    import asyncio
    import subprocess
    import sys
    from pathlib import Path

    await seed(clients.engine, await ensure_tenant(clients.engine, caller.tenant))
    harness.reply_text = ANSWER
    keel = str(Path(sys.executable).parent / "keel")
    common = ["--api-key", caller.key, "--api-url", keel_url]
    asked = await asyncio.to_thread(
        subprocess.run,
        [keel, "ask", "How many vacation days do new employees get?", *common],
        capture_output=True,
        text=True,
        check=False,
    )
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert asked.stdout.count("25 days") >= 2  # streamed, then the rendered answer

    harness.stream_delay = 0.02
    async with httpx.AsyncClient(base_url=keel_url, timeout=60) as http:
        started = await http.post(
            "/v1/rag/query",
            json={
                "question": "How many vacation days do new employees get in year one?",
                "wait_seconds": 0,
            },
            headers=caller.headers,
        )
    watched = await asyncio.to_thread(
        subprocess.run,
        [keel, "runs", "watch", started.json()["id"], *common],
        capture_output=True,
        text=True,
        check=False,
    )
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert "stage:" in watched.stdout and ANSWER in watched.stdout
    assert "completed" in watched.stdout
