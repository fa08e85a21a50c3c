"""Shared pieces of the fault tests: each request's outcome, the tally of a fault's row in the
README table, and the PostgreSQL checks behind its "lost" and "duplicated" columns.

A request is *accepted* once the API answered it or a run exists for it, *completed* when it
got its answer, *failed, typed* when it got an error that names its type, and *lost* when it
got neither (a transport error, an untyped 5xx, or a run that never closed).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from sqlalchemy import text

from keel.clients import Clients
from keel.settings import Settings
from tests.support.agents import RoleScript, role_of
from tests.support.provider_harness import RecordedRequest
from tests.support.worker_process import ApiProcess, WorkerProcess

Kind = Literal["model", "rag", "agent", "ingest"]
Status = Literal["completed", "failed", "lost"]

# The API's caches off, so every request reaches the provider; the RAG answer on the cheap
# tier, so model calls and RAG answers share one breaker (claude-haiku-4-5 -> gpt-4o-mini).
NO_CACHES = {
    "KEEL_EXACT_CACHE": "false",
    "KEEL_SEMANTIC_CACHE": "false",
    "KEEL_RAG__ANSWER_CACHE": "false",
    "KEEL_RAG__ANSWER_TIER": "cheap",
}
RAG_QUESTION = "How many vacation days do new employees get?"
RAG_REPLY = "New employees receive 25 days of paid vacation in their first year [Source 1]."


def replies(script: RoleScript | None = None) -> Callable[[RecordedRequest], str]:
    """A harness `reply_fn`: agents read their script, everything else the grounded answer."""

    def reply(request: RecordedRequest) -> str:
        if script is not None and role_of(request.body) != "unknown":
            return script(request)
        return RAG_REPLY

    return reply


@dataclass
class Outcome:
    """What one request came to, as its client saw it."""

    kind: Kind
    status: Status
    id: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    ended: float = 0.0  # time.monotonic() when the client had its answer
    started: float = 0.0  # ... and when it asked

    def in_flight(self, at: float) -> bool:
        return self.started < at < (self.ended or float("inf"))


@dataclass
class Tally:
    """One row of the README's fault table."""

    fault: str
    outcomes: list[Outcome] = field(default_factory=list)
    duplicated: int = 0

    def add(self, *outcomes: Outcome) -> None:
        self.outcomes.extend(outcomes)

    def count(self, status: Status) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def accepted(self) -> int:
        return sum(o.status != "lost" or bool(o.id) for o in self.outcomes)

    def by_kind(self) -> str:
        kinds = Counter(o.kind for o in self.outcomes)
        return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))

    def row(self) -> str:
        return (
            f"| {self.fault} | {self.accepted} ({self.by_kind()}) | {self.count('completed')} "
            f"| {self.count('failed')} | {self.count('lost')} | {self.duplicated} |"
        )

    def check(self) -> None:
        """Print the row; nothing lost, nothing doubled, every accepted request accounted for."""
        print(f"\nfault row: {self.row()}")
        lost = [o for o in self.outcomes if o.status == "lost"]
        assert not lost, lost
        assert self.duplicated == 0, self.row()
        assert self.accepted == self.count("completed") + self.count("failed")


def _finished(kind: Kind, rid: str, result: dict[str, Any]) -> Outcome:
    if kind == "model" and not result.get("ok"):
        return Outcome(kind, "failed", rid, result, str(result.get("stop_reason")))
    if kind == "rag" and result.get("status") == "failed":
        return Outcome(kind, "failed", rid, result, result.get("answer", ""))
    return Outcome(kind, "completed", rid, result, ended=time.monotonic())


async def wait_run(
    http: httpx.AsyncClient, headers: dict[str, str], kind: Kind, rid: str, *, within: float
) -> Outcome:
    """Poll `GET /v1/runs/{id}` until the run closes (lost if it never does in time)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            detail = await http.get(f"/v1/runs/{rid}", headers=headers, timeout=30)
        except httpx.TransportError:
            await asyncio.sleep(0.5)
            continue
        body = detail.json()
        if detail.status_code == 200 and body["status"] == "completed":
            return _finished(kind, rid, body["result"])
        if detail.status_code == 200 and body["status"] != "running":
            error = (body.get("error") or {}).get("type") or body["status"]
            return Outcome(kind, "failed", rid, body, error, time.monotonic())
        await asyncio.sleep(0.5)
    return Outcome(kind, "lost", rid, error="the run did not close in time")


async def ask(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    kind: Kind,
    path: str,
    body: dict[str, Any],
    *,
    within: float = 120,
) -> Outcome:
    """POST a request; a 202 is followed to its run's end."""
    started = time.monotonic()
    outcome = await _ask(http, headers, kind, path, body, within=within)
    outcome.started = started
    return outcome


async def _ask(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    kind: Kind,
    path: str,
    body: dict[str, Any],
    *,
    within: float,
) -> Outcome:
    try:
        response = await http.post(path, json=body, headers=headers, timeout=within)
    except httpx.TransportError as exc:
        return Outcome(kind, "lost", error=repr(exc))
    if response.status_code in (200, 202):
        payload = response.json()
        if response.status_code == 202:
            return await wait_run(http, headers, kind, payload["id"], within=within)
        return _finished(kind, payload["id"], payload.get("result") or payload)
    try:
        typed = response.json()["error"]["type"]
    except (ValueError, KeyError, TypeError):
        return Outcome(kind, "lost", error=f"{response.status_code}: {response.text[:200]}")
    return Outcome(kind, "failed", error=typed, ended=time.monotonic())


async def eventually(check: Callable[[], bool], *, within: float, what: str) -> None:
    """Poll `check` until it holds; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:g} s: {what}")
        await asyncio.sleep(0.2)


def model_call(question: str) -> dict[str, Any]:
    """A `POST /v1/model-calls` body on the cheap tier, never answered from a cache."""
    return {
        "call": {
            "messages": [{"role": "user", "content": question}],
            "tier": "cheap",
            "max_tokens": 64,
            "cache": False,
        },
        "wait_seconds": 60,
    }


def rag_query(n: int) -> dict[str, Any]:
    return {"question": f"{RAG_QUESTION} (request {n})", "wait_seconds": 60}


async def ok_rows(clients: Clients, ids: Iterable[str]) -> dict[str, int]:
    """Successful ledger rows (provider answers) per run id."""
    wanted = list(ids)
    async with clients.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT workflow_id, count(*) FROM llm_calls WHERE status = 'ok' "
                "AND workflow_id = ANY(:ids) GROUP BY 1"
            ),
            {"ids": wanted},
        )
        found = {r[0]: int(r[1]) for r in rows}
    return {i: found.get(i, 0) for i in wanted}


async def doubled_answers(clients: Clients, tally: Tally, per_run: int = 1) -> int:
    """Answers counted twice: a run id handed out twice, or a run with more than `per_run`
    provider answers in the ledger (each request here makes one model call)."""
    ids = [o.id for o in tally.outcomes if o.status == "completed" and o.kind in ("model", "rag")]
    repeated = len(ids) - len(set(ids))
    rows = await ok_rows(clients, ids)
    return repeated + sum(max(0, n - per_run) for n in rows.values())


async def chunk_faults(
    clients: Clients, tenant_id: Any, per_source: dict[str, int]
) -> tuple[int, int]:
    """(chunks lost, chunks doubled) of a tenant's documents against the expected counts."""
    async with clients.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT d.source, count(c.id), count(DISTINCT c.position) FROM documents d "
                "LEFT JOIN chunks c ON c.document_id = d.id WHERE d.tenant_id = :t GROUP BY 1"
            ),
            {"t": tenant_id},
        )
        stored = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    lost = sum(max(0, n - stored.get(s, (0, 0))[1]) for s, n in per_source.items())
    doubled = sum(count - distinct for count, distinct in stored.values())
    return lost, doubled


class Fleet:
    """A cpu and a gpu worker and the API, each its own process, for one fault test; a
    killed one (SIGKILL, by pid) is replaced by a new process, and `stop()` ends them all."""

    def __init__(self, settings: Settings, logs: Path, api_env: dict[str, str]) -> None:
        self.settings = settings
        self.logs = logs
        self.api_env = api_env
        self.workers: dict[str, WorkerProcess] = {}
        self.api: ApiProcess | None = None
        self._all: list[WorkerProcess | ApiProcess] = []

    def _worker(self, queue: Literal["cpu", "gpu"]) -> None:
        worker = WorkerProcess(self.settings, queue, self.logs / f"worker-{queue}.log").start()
        self.workers[queue] = worker
        self._all.append(worker)

    def _api(self) -> None:
        self.api = ApiProcess(self.settings, self.logs / "api.log", self.api_env)
        self._all.append(self.api)
        self.api.start()

    async def start(self) -> Fleet:
        self._worker("cpu")
        self._worker("gpu")
        await asyncio.to_thread(self._api)
        return self

    @property
    def url(self) -> str:
        assert self.api is not None
        return self.api.url

    def kill_worker(self, queue: Literal["cpu", "gpu"]) -> None:
        """SIGKILL the queue's worker and start another in its place."""
        self.workers[queue].kill()
        self._worker(queue)

    async def kill_api(self) -> None:
        """SIGKILL the API and start another (on a new port: `url` follows)."""
        assert self.api is not None
        self.api.kill()
        await asyncio.to_thread(self._api)

    def stop(self) -> None:
        for process in reversed(self._all):
            process.stop()
