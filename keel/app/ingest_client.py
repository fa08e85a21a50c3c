"""`keel ingest`: upload local files to the API as one ingestion job, and follow it.

Talks HTTP only, like `keel ask`: the API key decides the tenant, and `--tenant`, if given,
is checked by the server against it. A folder is uploaded in parts (at most 500 files and
~24 MB a request, under the API's limits) to `POST /v1/ingest-uploads`; the last part
starts the job at `POST /v1/ingest-jobs`. `--wait` polls `GET /v1/runs/{id}` and draws the
job's `progress` as a bar.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

PART_FILES = 500
PART_BYTES = 24 * 1024 * 1024


class IngestCliError(Exception):
    """A failure to show the user as is (no traceback)."""


@dataclass(frozen=True)
class LocalFile:
    name: str  # the source name it is stored under
    path: Path
    size: int


@dataclass
class IngestRequest:
    paths: list[Path]
    api_url: str
    api_key: str
    tenant: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    target_tokens: int = 512
    overlap_tokens: int = 50


def collect(paths: list[Path]) -> list[LocalFile]:
    """Files to upload: a file as its own name, a folder's files as `folder/relative/path`.

    Hidden files and folders (`.git`, `.DS_Store`) are skipped; other unsupported files are
    sent, and the job reports them.
    """
    found: dict[str, LocalFile] = {}
    for given in paths:
        if given.is_file():
            found.setdefault(given.name, LocalFile(given.name, given, given.stat().st_size))
            continue
        base = given.resolve()
        for path in sorted(base.rglob("*")):
            relative = path.relative_to(base)
            if any(p.startswith(".") for p in relative.parts) or not path.is_file():
                continue
            name = f"{base.name}/{relative.as_posix()}"
            found.setdefault(name, LocalFile(name, path, path.stat().st_size))
    return list(found.values())


def parts(files: list[LocalFile]) -> Iterator[list[LocalFile]]:
    """Groups of files, each small enough for one request."""
    part: list[LocalFile] = []
    size = 0
    for file in files:
        if part and (len(part) >= PART_FILES or size + file.size > PART_BYTES):
            yield part
            part, size = [], 0
        part.append(file)
        size += file.size
    if part:
        yield part


def _error(response: httpx.Response) -> IngestCliError:
    try:
        body = response.json()["error"]
        return IngestCliError(f"{response.status_code} {body['type']}: {body['message']}")
    except (ValueError, KeyError, TypeError):
        return IngestCliError(f"{response.status_code}: {response.text[:300]}")


def submit(http: httpx.Client, request: IngestRequest, console: Console) -> str:
    """Upload every file and start the job; returns the job (run) id."""
    files = collect(request.paths)
    if not files:
        raise IngestCliError("no files found in " + ", ".join(map(str, request.paths)))
    groups = list(parts(files))
    headers = {"Authorization": f"Bearer {request.api_key}"}
    form: dict[str, Any] = {
        "target_tokens": str(request.target_tokens),
        "overlap_tokens": str(request.overlap_tokens),
    }
    if request.tenant:
        form["tenant"] = request.tenant
    if request.metadata:
        form["metadata"] = json.dumps(request.metadata)
    job_id: str | None = None
    with _bar(console) as bar:
        task = bar.add_task("uploading", total=len(files))
        for index, group in enumerate(groups):
            last = index == len(groups) - 1
            # Every part but the last only stages files; the last one starts the job.
            data = dict(form) if last else {}
            if job_id:
                data["job_id"] = job_id
            handles = [(f.name, f.path.open("rb")) for f in group]
            try:
                response = http.post(
                    f"{request.api_url}/v1/{'ingest-jobs' if last else 'ingest-uploads'}",
                    data=data,
                    files=[("files", (name, handle)) for name, handle in handles],
                    headers=headers,
                )
            finally:
                for _, handle in handles:
                    handle.close()
            if response.status_code not in (201, 202):
                raise _error(response)
            job_id = response.json()["id" if last else "job_id"]
            bar.advance(task, len(group))
    assert job_id is not None
    return job_id


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def follow(
    http: httpx.Client, request: IngestRequest, job_id: str, console: Console, poll: float = 0.5
) -> dict[str, Any]:
    """Poll the run until it ends, drawing its progress; returns the run's final detail."""
    headers = {"Authorization": f"Bearer {request.api_key}"}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files  {task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("ingesting", total=None, detail="")
        while True:
            response = http.get(f"{request.api_url}/v1/runs/{job_id}", headers=headers)
            if response.status_code != 200:
                raise _error(response)
            run = response.json()
            progress = run.get("progress") or {}
            if progress:
                bar.update(
                    task,
                    total=progress.get("files_total") or None,
                    completed=progress.get("files_done", 0),
                    detail=(
                        f"{progress.get('documents_stored', 0)} stored, "
                        f"{progress.get('documents_unchanged', 0)} unchanged, "
                        f"{progress.get('documents_failed', 0)} failed, "
                        f"{progress.get('chunks_written', 0)} chunks"
                    ),
                )
            if run["status"] != "running":
                if run["status"] == "completed":
                    result = run["result"]
                    bar.update(task, total=result["files_total"], completed=result["files_total"])
                return dict(run)
            time.sleep(poll)


def render(console: Console, run: dict[str, Any]) -> None:
    """The finished job: counts, then each failure with its reason."""
    if run["status"] != "completed":
        error = run.get("error") or {}
        console.print(f"[bold red]job {run['id']} {run['status']}[/] {error.get('message', '')}")
        return
    result = run["result"]
    console.print(
        f"[bold green]done[/] {result['files_total']} files: "
        f"{result['documents_stored']} documents stored, "
        f"{result['documents_unchanged']} unchanged, {result['documents_failed']} failed; "
        f"{result['chunks_written']} chunks written"
    )
    if result["failures"]:
        table = Table("source", "problem", "reason", show_edge=False)
        for failure in result["failures"]:
            table.add_row(failure["source"], failure["kind"], failure["reason"])
        console.print(table)
        if result.get("failures_omitted"):
            console.print(f"... and {result['failures_omitted']} more")
    for error in result.get("batch_errors", []):
        console.print(f"[red]batch failed[/] {error}")
