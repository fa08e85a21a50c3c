"""Bench: bounded load on the embedded stack, then the same load with a worker SIGKILLed.

Loopback only, a fixed number of clients for a fixed time (`KEEL_BENCH_LOAD_CLIENTS`, default
20; `KEEL_BENCH_LOAD_SECONDS` per phase, default 120). The API runs in its own process, as
`keel up` runs it, with two cpu workers and a gpu worker as separate processes. Each client
loops over a fixed mix, seeded per client:

- 40 % RAG questions asked before (answer-cache hits, served by the API);
- 30 % RAG questions never asked (a durable `RagQueryWorkflow` each);
- 30 % model calls with a new prompt (the API's direct path; a failure becomes a workflow).

Phase 2 repeats phase 1 and SIGKILLs one of the two cpu workers halfway through: its
workflow tasks move to the other worker when their sticky queue times out, and its running
activities are retried after their timeouts. Every response is counted: 200, 202 (still
running after `wait_seconds`: accepted, not lost), or an error (any other status or a
transport failure).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from keel.auth import create_key, ensure_tenant
from keel.clients import Clients
from tests.bench.common import Entry, bench_stack
from tests.support.rag_corpus import seed
from tests.support.worker_process import WorkerProcess, api_process

CLIENTS = int(os.environ.get("KEEL_BENCH_LOAD_CLIENTS", "20"))
SECONDS = float(os.environ.get("KEEL_BENCH_LOAD_SECONDS", "120"))
WAIT_SECONDS = 60.0
QUESTIONS = [
    "How many vacation days do new employees get?",
    "How much is the hotel reimbursed per night?",
    "What is the daily meal allowance?",
    "How long is parental leave?",
    "Is economy class required for flights?",
    "Who approves travel expenses?",
    "What is the RTO of billing-db?",
    "How do I get VPN access?",
]
ROUTES = ("rag, cached", "rag, uncached", "model call")


def _request(
    rng: random.Random, phase: str, client: int, n: int
) -> tuple[str, str, dict[str, Any]]:
    roll = rng.random()
    if roll < 0.4:
        question = rng.choice(QUESTIONS)
        return ROUTES[0], "/v1/rag/query", {"question": question, "wait_seconds": WAIT_SECONDS}
    if roll < 0.7:
        question = f"{rng.choice(QUESTIONS)} ({phase}: client {client}, request {n})"
        return ROUTES[1], "/v1/rag/query", {"question": question, "wait_seconds": WAIT_SECONDS}
    prompt = f"Summarise in one line: {phase} request {n} of client {client}, travel policy."
    body = {
        "call": {"messages": [{"role": "user", "content": prompt}], "max_tokens": 64},
        "feature": "load",
        "wait_seconds": WAIT_SECONDS,
    }
    return ROUTES[2], "/v1/model-calls", body


async def _client(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    phase: str,
    client: int,
    until: float,
    results: list[tuple[str, str, float]],
) -> None:
    rng = random.Random(1000 + client)
    n = 0
    while time.monotonic() < until:
        route, path, body = _request(rng, phase, client, n)
        n += 1
        started = time.perf_counter()
        try:
            response = await http.post(path, json=body, headers=headers)
            outcome = str(response.status_code)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        results.append((route, outcome, time.perf_counter() - started))


async def _phase(
    base: str, headers: dict[str, str], phase: str, kill: WorkerProcess | None
) -> list[tuple[str, str, float]]:
    results: list[tuple[str, str, float]] = []
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base, timeout=WAIT_SECONDS + 30, limits=limits) as http:
        until = time.monotonic() + SECONDS
        clients = [
            asyncio.create_task(_client(http, headers, phase, c, until, results))
            for c in range(CLIENTS)
        ]
        if kill is not None:
            await asyncio.sleep(SECONDS / 2)
            kill.kill()
        await asyncio.gather(*clients)
    return results


def _report(entry: Entry, label: str, results: list[tuple[str, str, float]]) -> None:
    for route in ROUTES:
        mine = [(outcome, s) for r, outcome, s in results if r == route]
        ok = sorted(s for outcome, s in mine if outcome == "200")
        errors = [outcome for outcome, _ in mine if outcome not in ("200", "202")]
        entry.measurements[f"{label}, {route}: requests"] = len(mine)
        entry.measurements[f"{label}, {route}: errors"] = len(errors)
        entry.measurements[f"{label}, {route}: 202 (still running)"] = sum(
            1 for outcome, _ in mine if outcome == "202"
        )
        if ok:
            p99 = ok[min(len(ok) - 1, int(0.99 * len(ok)))]
            entry.measurements[f"{label}, {route}: p50 ms"] = round(statistics.median(ok) * 1000, 1)
            entry.measurements[f"{label}, {route}: p99 ms"] = round(p99 * 1000, 1)
        if errors:
            entry.notes.append(f"{label}, {route}: errors {sorted(set(errors))}")
    total = len(results)
    failed = sum(1 for _, outcome, _ in results if outcome not in ("200", "202"))
    entry.measurements[f"{label}: requests per second"] = round(total / SECONDS, 1)
    entry.measurements[f"{label}: error rate %"] = round(100 * failed / max(1, total), 2)


async def run() -> Entry:
    entry = Entry(name=f"Load: {CLIENTS} clients for {SECONDS:.0f} s, then a cpu worker killed")
    with bench_stack() as settings, tempfile.TemporaryDirectory() as logs:
        clients = await Clients.connect(settings)
        log = Path(logs) / "workers.log"
        workers = [
            WorkerProcess(settings, "cpu", log).start(),
            WorkerProcess(settings, "cpu", log).start(),
            WorkerProcess(settings, "gpu", log).start(),
        ]
        try:
            tenant_id = await ensure_tenant(clients.engine, "bench-load")
            await seed(clients.engine, tenant_id)
            key = await create_key(clients.engine, "bench-load")
            headers = {"Authorization": f"Bearer {key}"}
            with api_process(settings, Path(logs) / "api.log") as base:
                async with httpx.AsyncClient(base_url=base, timeout=120) as http:
                    for question in QUESTIONS:  # warm the workers and fill the answer cache
                        await http.post(
                            "/v1/rag/query", json={"question": question}, headers=headers
                        )
                _report(entry, "steady", await _phase(base, headers, "steady", None))
                killed = await _phase(base, headers, "kill", workers[0])
                _report(entry, "cpu worker killed halfway", killed)
        finally:
            for worker in workers:
                worker.stop()
            await clients.close()
    entry.notes.append(
        "Errors are responses other than 200/202 and transport failures; 202 means the run was "
        f"still going after wait_seconds={WAIT_SECONDS:.0f} (accepted, answer at /v1/runs/{{id}})."
    )
    return entry
