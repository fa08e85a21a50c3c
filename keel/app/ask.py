"""`keel ask`: one question to the API's `POST /v1/rag/query`, printed for a person.

Talks HTTP only (no database, no Temporal), so it works against any Keel deployment given a
URL and a key. A run that outlives the route's wait is polled at `GET /v1/runs/{id}`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from keel.app.run_events import EventsError, follow
from keel.settings import Settings


class AskError(Exception):
    """A failure to show the user as is (no traceback)."""


@dataclass(frozen=True)
class AskOptions:
    question: str
    tenant: str | None = None
    show_sources: bool = False
    api_key: str | None = None
    api_url: str | None = None
    wait_seconds: float = 60.0
    filters: dict[str, Any] | None = None
    # Called with each piece of the answer as it is generated (None: just wait for it).
    on_token: Callable[[str], None] | None = None


def resolve_key(config: Settings, explicit: str | None) -> str:
    """`--api-key`/`KEEL_API_KEY`, else the dev key that `keel up` wrote."""
    from keel.app.cli import DEV_KEY_FILE

    if explicit:
        return explicit
    path = Path(config.data_dir) / DEV_KEY_FILE
    if path.is_file():
        return path.read_text().strip()
    raise AskError(
        f"no API key: pass --api-key, set KEEL_API_KEY, or run `keel up` (which writes {path})"
    )


def _error(response: httpx.Response) -> AskError:
    try:
        body = response.json()["error"]
        return AskError(f"{response.status_code} {body['type']}: {body['message']}")
    except (ValueError, KeyError, TypeError):
        return AskError(f"{response.status_code}: {response.text[:300]}")


def ask(config: Settings, options: AskOptions, *, client: httpx.Client | None = None) -> Any:
    """Send the question; wait for the answer (polling the run if the route returned 202).

    Returns:
        The `RagAnswer` as a dict, with `run_id` added.

    Raises:
        AskError: no key, the API is unreachable or refused, or the run did not finish.
    """
    url = (options.api_url or f"http://localhost:{config.ports.api}").rstrip("/")
    headers = {"Authorization": f"Bearer {resolve_key(config, options.api_key)}"}
    streaming = options.on_token is not None
    body: dict[str, Any] = {
        "question": options.question,
        # Streaming: the run id at once (a cache hit still answers 200 straight away).
        "wait_seconds": 0 if streaming else min(options.wait_seconds, 300),
        "filters": options.filters or {},
    }
    if options.tenant:
        body["tenant"] = options.tenant
    http = client or httpx.Client(timeout=options.wait_seconds + 30)
    try:
        response = http.post(f"{url}/v1/rag/query", json=body, headers=headers)
        if response.status_code == 200:
            answer = response.json()
            return {**answer["result"], "run_id": answer["id"]}
        if response.status_code != 202:
            raise _error(response)
        run_id = response.json()["id"]
        if options.on_token is not None:
            return _streamed(http, url, run_id, headers, options.on_token)
        deadline = time.monotonic() + options.wait_seconds
        while time.monotonic() < deadline:
            run = http.get(f"{url}/v1/runs/{run_id}", headers=headers)
            if run.status_code != 200:
                raise _error(run)
            detail = run.json()
            if detail["status"] == "completed":
                return {**detail["result"], "run_id": run_id}
            if detail["status"] != "running":
                raise AskError(f"run {run_id} ended {detail['status']}: {detail.get('error')}")
            time.sleep(0.5)
        raise AskError(f"no answer within {options.wait_seconds:g} s; see GET /v1/runs/{run_id}")
    except httpx.HTTPError as exc:
        raise AskError(
            f"cannot reach the Keel API at {url} ({exc}); is `keel up` running?"
        ) from exc
    finally:
        if client is None:
            http.close()


def _streamed(
    http: httpx.Client,
    url: str,
    run_id: str,
    headers: dict[str, str],
    on_token: Callable[[str], None],
) -> Any:
    """Follow the run's events, handing each piece of the answer to `on_token`."""
    attempt: list[int] = []

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind != "token":
            return
        if attempt and data.get("attempt") != attempt[0]:
            on_token("\n[retrying]\n")  # a retried attempt starts its answer again
        attempt[:] = [data.get("attempt", 0)]
        on_token(str(data.get("text", "")))

    try:
        final = follow(http, url, run_id, headers, on_event)
    except EventsError as exc:
        raise AskError(f"cannot follow run {run_id}: {exc}") from exc
    if final.get("status") != "completed":
        raise AskError(f"run {run_id} ended {final.get('status')}: {final.get('error')}")
    return {**final["result"], "run_id": run_id}


def render(console: Console, answer: dict[str, Any], *, show_sources: bool) -> None:
    """The answer, its citations, and (optionally) every source the model was given."""
    console.print(answer["answer"])
    console.print()
    for cite in answer.get("citations", []):
        console.print(f"  [Source {cite['source']}] {cite['title']}  [dim]{cite['document_id']}[/]")
    if show_sources and answer.get("sources"):
        table = Table("#", "title", "date", "department", "type", "chunk", show_edge=False)
        for s in answer["sources"]:
            table.add_row(
                str(s["number"]),
                s.get("title") or "",
                s.get("date") or "",
                s.get("department") or "",
                s.get("doc_type") or "",
                str(s["chunk_id"]),
            )
        console.print(table)
    facts = [
        answer.get("status", ""),
        f"cache {answer.get('cache_layer', 'none')}",
        f"{answer.get('timings_ms', {}).get('total', 0):.0f} ms",
        f"${answer.get('cost_usd', 0):.6f}",
        f"run {answer.get('run_id', '')}",
    ]
    if answer.get("degraded"):
        facts.insert(1, "degraded: " + "; ".join(answer.get("notes", [])))
    console.print("[dim]" + " · ".join(facts) + "[/]")
