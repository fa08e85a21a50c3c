"""Ingestion end to end on real Temporal, PostgreSQL and Redis: API -> workflow -> store."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.worker import Worker

from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.ingest import IngestResult
from keel.settings import Settings
from tests.conftest import Caller
from tests.support.ingest_corpus import (
    expected,
    expected_chunks,
    long_text,
    mixed_corpus,
    start_job,
)
from tests.test_bm25 import _stats_drift
from tests.test_parsing import make_pdf
from worker import shared_embedder

pytestmark = pytest.mark.timeout(180)


def _multipart(files: dict[str, bytes]) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (name, data)) for name, data in files.items()]


async def ingest(
    api: httpx.AsyncClient,
    clients: Clients,
    caller: Caller,
    files: dict[str, bytes],
    **form: Any,
) -> IngestResult:
    """POST the files as a job, wait for it, and return its result as GET /v1/runs shows it."""
    response = await api.post(
        "/v1/ingest-jobs", files=_multipart(files), data=form, headers=caller.headers
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    await clients.temporal.get_workflow_handle(job_id).result()
    run = (await api.get(f"/v1/runs/{job_id}", headers=caller.headers)).json()
    assert run["status"] == "completed", run
    return IngestResult.model_validate(run["result"])


async def scalar(clients: Clients, sql: str, **params: Any) -> Any:
    async with clients.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def rows(clients: Clients, sql: str, **params: Any) -> list[Any]:
    async with clients.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def tenant_id(clients: Clients, caller: Caller) -> uuid.UUID:
    return await ensure_tenant(clients.engine, caller.tenant)


async def test_mixed_job_stores_every_chunk_exactly_once_and_reruns_write_nothing(
    api: httpx.AsyncClient, clients: Clients, caller: Caller, workers: list[Worker]
) -> None:
    files = mixed_corpus(200)
    files["long/handbook.txt"] = long_text(1400).encode()
    docs, chunks = expected(files)
    tid = await tenant_id(clients, caller)

    first = await ingest(api, clients, caller, files, metadata='{"doc_type": "handbook"}')
    assert (first.files_total, first.files_failed) == (201, 0)
    assert (first.documents_stored, first.documents_failed) == (docs, 0)
    assert first.chunks_written == chunks
    assert (
        await scalar(clients, "select count(*) from chunks where tenant_id = :t", t=tid) == chunks
    )
    assert (
        await scalar(clients, "select count(*) from documents where tenant_id = :t", t=tid) == docs
    )
    # No (document, position) twice, and every chunk has its window vectors.
    assert (
        await scalar(
            clients,
            "select count(*) from (select document_id, position from chunks where tenant_id = :t "
            "group by 1, 2 having count(*) > 1) d",
            t=tid,
        )
        == 0
    )
    assert (
        await scalar(
            clients,
            "select count(*) from chunks c where c.tenant_id = :t and not exists "
            "(select 1 from chunk_windows w where w.chunk_id = c.id)",
            t=tid,
        )
        == 0
    )
    assert (
        await scalar(
            clients,
            "select count(*) from documents where tenant_id = :t and "
            "metadata->>'doc_type' = 'handbook'",
            t=tid,
        )
        == docs
    )
    assert (
        await scalar(
            clients,
            "select count(*) from ingest_files where job_id like 'ingest-%' and tenant_id = :t",
            t=tid,
        )
        == 0
    )  # staging dropped

    before = await rows(
        clients,
        "select max(c.id), count(*), max(d.updated_at) from chunks c join documents d "
        "on d.id = c.document_id where c.tenant_id = :t",
        t=tid,
    )
    again = await ingest(api, clients, caller, files, metadata='{"doc_type": "handbook"}')
    assert (again.documents_stored, again.documents_unchanged, again.chunks_written) == (
        0,
        docs,
        0,
    )
    after = await rows(
        clients,
        "select max(c.id), count(*), max(d.updated_at) from chunks c join documents d "
        "on d.id = c.document_id where c.tenant_id = :t",
        t=tid,
    )
    assert after == before

    changed = dict(files)
    changed["notes/note-0000.txt"] = b"The cafeteria now opens at seven thirty."
    untouched = await rows(
        clients,
        "select c.id from chunks c join documents d on d.id = c.document_id "
        "where c.tenant_id = :t and d.source <> 'notes/note-0000.txt' order by 1",
        t=tid,
    )
    third = await ingest(api, clients, caller, changed, metadata='{"doc_type": "handbook"}')
    assert (third.documents_stored, third.documents_unchanged) == (1, docs - 1)
    assert third.chunks_written == 1
    assert (
        await rows(
            clients,
            "select c.id from chunks c join documents d on d.id = c.document_id "
            "where c.tenant_id = :t and d.source <> 'notes/note-0000.txt' order by 1",
            t=tid,
        )
        == untouched
    )
    assert await rows(
        clients,
        "select d.version, c.text from documents d join chunks c on c.document_id = d.id "
        "where d.tenant_id = :t and d.source = 'notes/note-0000.txt'",
        t=tid,
    ) == [(2, "The cafeteria now opens at seven thirty.")]


async def test_bad_files_get_a_reason_each_and_the_rest_is_stored(
    api: httpx.AsyncClient,
    clients: Clients,
    caller: Caller,
    settings: Settings,
    workers: list[Worker],
) -> None:
    settings.ingest_max_file_bytes = 4_000  # the API reads it per request
    good = {
        "ok/one.txt": b"Badges are renewed every January.",
        "ok/two.md": b"---\ndepartment: HR\n---\n# Two\n\nLeave requests go to your manager.",
        "ok/faq.jsonl": b'{"text": "Parking is free for visitors."}\nnot json\n',
    }
    bad = {
        "bad/broken.pdf": b"%PDF-1.4\nnot really a pdf",
        "bad/empty.txt": b"",
        "bad/blob.txt": bytes(range(256)) * 4,
        "bad/huge.md": b"lorem ipsum " * 1000,
        "bad/slides.pptx": b"PK\x03\x04 not supported",
        "bad/scan.pdf": make_pdf([""]),
    }
    result = await ingest(api, clients, caller, {**good, **bad})
    kinds = {f.source: f.kind for f in result.failures}
    assert kinds == {
        "bad/broken.pdf": "malformed",
        "bad/empty.txt": "empty",
        "bad/blob.txt": "binary",
        "bad/huge.md": "too_large",
        "bad/slides.pptx": "unsupported",
        "bad/scan.pdf": "empty",
        "ok/faq.jsonl#L2": "malformed",
    }
    reasons = {f.source: f.reason for f in result.failures}
    assert "max_bytes=4,000" in reasons["bad/huge.md"]
    assert "OCR" in reasons["bad/scan.pdf"]
    assert (result.files_total, result.files_failed) == (9, 6)
    assert (result.documents_stored, result.documents_failed) == (3, 7)
    tid = await tenant_id(clients, caller)
    stored = await rows(
        clients, "select source from documents where tenant_id = :t order by 1", t=tid
    )
    assert [r[0] for r in stored] == ["ok/faq.jsonl#L1", "ok/one.txt", "ok/two.md"]
    # The oversized upload was never stored in staging, only its size.
    assert result.chunks_written == 3


async def test_an_unstorable_document_fails_alone_and_its_group_is_stored(
    api: httpx.AsyncClient,
    clients: Clients,
    caller: Caller,
    workers: list[Worker],
) -> None:
    # Documents are stored a group per transaction. One the database refuses (here a CHECK
    # constraint this test adds: a real constraint violation, raised in the group's
    # transaction) must not take the others of its group with it.
    files = {
        f"group/doc-{n}.txt": f"Policy {n} covers desk booking rules.".encode() for n in range(6)
    }
    files["group/doc-3.txt"] = b"Policy 3 mentions the word unstorablemarker here."
    files["group/old.txt"] = b"The old policy covered parking."
    tid = await tenant_id(clients, caller)
    first = await ingest(api, clients, caller, {"group/old.txt": files["group/old.txt"]})
    assert first.documents_stored == 1
    files["group/old.txt"] = b"The new policy covers parking and bicycles."  # updated in the group
    async with clients.engine.begin() as conn:
        await conn.execute(
            text(
                "ALTER TABLE chunks ADD CONSTRAINT test_unstorable "
                "CHECK (text NOT LIKE '%unstorablemarker%') NOT VALID"
            )
        )
    try:
        result = await ingest(api, clients, caller, files)
    finally:
        async with clients.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE chunks DROP CONSTRAINT test_unstorable"))
    assert (result.documents_stored, result.documents_failed) == (6, 1)
    assert [(f.source, f.kind) for f in result.failures] == [("group/doc-3.txt", "store_failed")]
    assert "cannot store document" in result.failures[0].reason
    stored = await rows(
        clients,
        "select d.source, d.version, c.text from documents d join chunks c "
        "on c.document_id = d.id where d.tenant_id = :t order by 1",
        t=tid,
    )
    assert [(s, v) for s, v, _ in stored] == [
        ("group/doc-0.txt", 1),
        ("group/doc-1.txt", 1),
        ("group/doc-2.txt", 1),
        ("group/doc-4.txt", 1),
        ("group/doc-5.txt", 1),
        ("group/old.txt", 2),
    ]
    assert stored[-1][2] == "The new policy covers parking and bicycles."
    # The kept BM25 statistics match a recount of what was stored.
    assert await _stats_drift(clients.engine, tid) == dict.fromkeys(
        ("df", "postings", "chunks", "length"), 0
    )


async def test_last_sentence_of_a_long_chunk_is_found_by_vector_and_keyword(
    api: httpx.AsyncClient, clients: Clients, caller: Caller, workers: list[Worker]
) -> None:
    from tests.test_embedding import NEEDLE, QUERY, filler

    embedder = shared_embedder("onnx")
    # A 512-token chunk that ends with the needle, far beyond the model's 256 word pieces;
    # no overlap, so no other chunk repeats the needle.
    head, tail = filler(embedder, 440), filler(embedder, 300, shift=5)
    files = {
        "long.md": f"{head} {NEEDLE}\n\n{tail}".encode(),
        "other.txt": b"The bakery cleans its bread ovens every Friday afternoon.",
    }
    await ingest(api, clients, caller, files, overlap_tokens="0")
    tid = await tenant_id(clients, caller)
    [[chunk_id, body, token_count, meta]] = await rows(
        clients,
        "select c.id, c.text, c.token_count, c.metadata from chunks c "
        "where c.tenant_id = :t and c.text like :n",
        t=tid,
        n=f"%{NEEDLE[:40]}%",
    )
    assert body.endswith(NEEDLE) and token_count > 400
    first_window_end = meta["windows"][0][1]
    assert body.index(NEEDLE) > first_window_end  # only a later window reads the needle
    query = "[" + ",".join(f"{v:.7g}" for v in embedder.embed([QUERY])[0]) + "]"
    nearest = await rows(
        clients,
        # Exact search over this tenant's windows (a materialized CTE keeps the shared
        # approximate index, full of other tests' vectors, out of the answer).
        "with mine as materialized (select chunk_id, embedding from chunk_windows "
        "where tenant_id = :t) select chunk_id from mine "
        "order by embedding <=> cast(:q as vector) limit 1",
        t=tid,
        q=query,
    )
    assert nearest == [(chunk_id,)]
    keyword = await rows(
        clients,
        "select id from chunks where tenant_id = :t and "
        "tsv @@ plainto_tsquery('english', 'titanium hull corrosion')",
        t=tid,
    )
    assert keyword == [(chunk_id,)]


async def test_stored_chunks_carry_their_metadata_and_the_vectors_the_model_gave(
    api: httpx.AsyncClient, clients: Clients, caller: Caller, workers: list[Worker]
) -> None:
    """The upsert copies staged vectors across in SQL: each window's vector and the pooled
    summary must still be the model's, in order, with the chunk's spans and section."""
    import numpy as np

    from activities.embedding_windows import embed_windows_batch, pool

    embedder = shared_embedder("onnx")
    files = {"guide.md": f"# Returns\n\n{long_text(700, seed=9)}".encode()}
    await ingest(api, clients, caller, files, metadata='{"team": "ops"}')
    tid = await tenant_id(clients, caller)
    stored = await rows(
        clients,
        "select c.id, c.text, c.embedding::text, c.metadata from chunks c "
        "where c.tenant_id = :t order by c.position",
        t=tid,
    )
    assert len(stored) == 2
    expected_windows = embed_windows_batch(embedder, [row[1] for row in stored])
    assert [len(w) for w in expected_windows][0] >= 2  # the first chunk packs several windows

    def floats(value: str) -> Any:
        return np.array(value.strip("[]").split(","), dtype=np.float32)

    for (chunk_id, body, pooled, meta), windows in zip(stored, expected_windows, strict=True):
        assert meta["team"] == "ops" and meta["source"] == "guide.md"
        assert meta["section"] == "Returns"
        assert body == files["guide.md"].decode()[meta["char_start"] : meta["char_end"]]
        assert meta["windows"] == [[w.char_start, w.char_end] for w in windows]
        got = await rows(
            clients,
            "select window_index, embedding::text from chunk_windows where chunk_id = :c "
            "order by window_index",
            c=chunk_id,
        )
        assert [index for index, _ in got] == list(range(len(windows)))
        for (_, vector), window in zip(got, windows, strict=True):
            assert np.allclose(floats(vector), window.vector, atol=1e-5)
        assert np.allclose(floats(pooled), pool(windows), atol=1e-5)


async def test_long_job_continues_as_new_and_keeps_its_counts(
    clients: Clients, settings: Settings, tenant: str, workers: list[Worker]
) -> None:
    files = mixed_corpus(24, seed=11)
    docs, chunks = expected(files)
    job_id = await start_job(
        clients,
        settings,
        tenant,
        files,
        batch_files=2,
        max_concurrent_batches=2,
        history_event_budget=60,
    )
    result: IngestResult = await clients.temporal.get_workflow_handle(
        job_id, result_type=IngestResult
    ).result()
    assert result.runs >= 2
    assert (result.files_total, result.batches) == (24, 12)
    assert (result.documents_stored, result.chunks_written) == (docs, chunks)
    tid = await ensure_tenant(clients.engine, tenant)
    assert (
        await scalar(clients, "select count(*) from chunks where tenant_id = :t", t=tid) == chunks
    )
    history = await clients.temporal.get_workflow_handle(job_id).fetch_history()
    assert len(history.events) < 120  # the last run only


async def test_concurrent_jobs_with_the_same_files_store_each_document_once(
    clients: Clients, settings: Settings, tenant: str, workers: list[Worker]
) -> None:
    # Two jobs store the same documents at once, in groups that overlap in opposite orders:
    # each group locks and inserts its documents in source order, so they queue instead of
    # deadlocking, and every document and chunk is stored exactly once.
    files = mixed_corpus(40, seed=13)
    docs, chunks = expected(files)
    backwards = dict(reversed(list(files.items())))
    jobs = [
        await start_job(clients, settings, tenant, batch, batch_files=8, max_concurrent_batches=2)
        for batch in (files, backwards)
    ]
    results: list[IngestResult] = await asyncio.gather(
        *(clients.temporal.get_workflow_handle(j, result_type=IngestResult).result() for j in jobs)
    )
    for result in results:
        assert result.documents_failed == 0
        assert result.documents_stored + result.documents_unchanged == docs
    tid = await ensure_tenant(clients.engine, tenant)
    assert await scalar(clients, "select count(*) from documents where tenant_id = :t", t=tid) == (
        docs
    )
    assert (
        await scalar(clients, "select count(*) from chunks where tenant_id = :t", t=tid) == chunks
    )
    assert (
        await scalar(clients, "select max(version) from documents where tenant_id = :t", t=tid) == 1
    )
    assert await _stats_drift(clients.engine, tid) == dict.fromkeys(
        ("df", "postings", "chunks", "length"), 0
    )


async def test_cancel_stops_batches_drops_staging_and_reports_cancelled(
    api: httpx.AsyncClient,
    clients: Clients,
    caller: Caller,
    settings: Settings,
    workers: list[Worker],
) -> None:
    files = mixed_corpus(30, seed=5)
    job_id = await start_job(
        clients, settings, caller.tenant, files, batch_files=1, max_concurrent_batches=1
    )
    progress: dict[str, Any] = {}
    for _ in range(300):
        run = (await api.get(f"/v1/runs/{job_id}", headers=caller.headers)).json()
        progress = run.get("progress") or {}
        if progress.get("batches_done", 0) >= 2:
            break
        await asyncio.sleep(0.1)
    assert progress["state"] == "running" and progress["files_total"] == 30
    assert (await api.post(f"/v1/runs/{job_id}/cancel", headers=caller.headers)).status_code == 202
    with pytest.raises(WorkflowFailureError):
        await clients.temporal.get_workflow_handle(job_id).result()
    run = (await api.get(f"/v1/runs/{job_id}", headers=caller.headers)).json()
    assert run["status"] == "canceled"
    assert (
        await scalar(clients, "select count(*) from ingest_files where job_id = :j", j=job_id) == 0
    )

    history = await clients.temporal.get_workflow_handle(job_id).fetch_history()
    children = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in history.events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]
    assert 2 <= len(children) < 30
    for child in children:
        described = await clients.temporal.get_workflow_handle(child).describe()
        # Cancelled (or finished) by the job itself, never terminated by its closing.
        assert described.status in (
            WorkflowExecutionStatus.CANCELED,
            WorkflowExecutionStatus.COMPLETED,
        ), (child, described.status)
    # Whatever was stored is whole: every stored document has all of its chunks.
    tid = await tenant_id(clients, caller)
    stored = await rows(
        clients,
        "select d.source, count(c.id) from documents d join chunks c "
        "on c.document_id = d.id where d.tenant_id = :t group by 1",
        t=tid,
    )
    per_source = expected_chunks(files)
    assert 0 < len(stored) < len(per_source)
    assert dict(stored) == {source: per_source[source] for source, _ in stored}
