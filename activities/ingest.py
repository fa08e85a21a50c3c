"""Ingest activities on the cpu queue: plan a job's batches, parse, chunk and store a batch.

Each stage reads what the previous one left in the staging tables (migration 0003) and
writes its own results there, so workflow history carries only a job id and a range of file
ids. Each stage is also its own checkpoint: it commits per file (parse) or per document
(chunk, upsert) and skips what an earlier attempt already finished, so a retry after a
worker dies resumes where the dead attempt stopped instead of starting over.

Exactly-once storage comes from `activities.store.upsert_document`: one transaction per
document, keyed by tenant + source + content hash. A retry of a document that was committed
just before the worker died finds the same hash and writes nothing; the `prior_hash` noted
at parse time tells that case ("stored by this job") from "unchanged before this job".

Embedding runs on the gpu queue (`activities.ingest_embed`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from tokenizers import Tokenizer

from activities.embedding import load_tokenizer, minilm_tokenizer_path
from activities.staging import drop_job, under_root
from activities.store import ChunkRecord, apply_invalidations, upsert_document
from keel.contracts.ingest import (
    BatchPlan,
    BatchRef,
    FileRange,
    IngestFailure,
    IngestOptions,
    JobRef,
    JobSummary,
    PlanRequest,
    StageCounts,
)
from keel.settings import Settings
from keel.telemetry import activity_context, get_logger
from keel.text.chunking import Chunk, chunk_text
from keel.text.parsing import ParsedDocument, ParseError, parse_file

T = TypeVar("T")
MAX_REPORTED_FAILURES = 500  # per job result; the counts stay exact beyond it
MAX_REASON_CHARS = 300
DIM = 384

log = get_logger("keel.ingest")


@lru_cache(maxsize=1)
def chunking_tokenizer() -> Tokenizer:
    """The tokenizer chunks are measured with: all-MiniLM-L6-v2's WordPiece.

    Every configured embedder reads it (the ONNX and sentence-transformers models are
    MiniLM; the OpenAI embedder sizes its chunks with it too, see `OpenAIEmbedder`), and
    loading only the tokenizer keeps the model off the cpu workers.
    """
    return load_tokenizer(minilm_tokenizer_path())


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking work (parsing, tokenizing, a model) off the event loop, heartbeating.

    The heartbeats say "this worker is alive" while a long call runs, and are how Temporal
    delivers a cancel to the activity. A dead worker stops heartbeating, so its attempt is
    retried elsewhere after the heartbeat timeout instead of the whole start-to-close one.
    """
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    while True:
        done, _ = await asyncio.wait({task}, timeout=1.0)
        if done:
            return task.result()
        activity.heartbeat()


def content_hash(
    doc: ParsedDocument, title: str, metadata: dict[str, Any], opts: IngestOptions
) -> str:
    """What makes two versions of a document the same: text, title, metadata, and the
    settings that shape its chunks and vectors (so changing them re-ingests)."""
    payload = json.dumps(
        {
            "text": doc.text,
            "title": title,
            "metadata": metadata,
            "chunking": [opts.target_tokens, opts.overlap_tokens],
            "embedder": opts.embedder,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _reason(message: str) -> str:
    return message if len(message) <= MAX_REASON_CHARS else message[: MAX_REASON_CHARS - 1] + "…"


def _parse(name: str, data: bytes, max_bytes: int) -> tuple[list[ParsedDocument], list[ParseError]]:
    errors: list[ParseError] = []
    try:
        docs = parse_file(name, data, max_bytes=max_bytes, errors=errors)
    except ParseError as exc:
        return [], [exc]
    return docs, errors


def _cut(body: str, opts: IngestOptions) -> list[Chunk]:
    return chunk_text(
        body,
        chunking_tokenizer(),
        target_tokens=opts.target_tokens,
        overlap_tokens=opts.overlap_tokens,
    )


@dataclass(frozen=True)
class _File:
    id: int
    name: str
    path: str | None
    size: int


def _failed_row(source: str, kind: str, reason: str) -> dict[str, Any]:
    return {
        "source": source,
        "title": "",
        "metadata": "{}",
        "text": None,
        "hash": None,
        "prior": None,
        "status": "failed",
        "kind": kind,
        "error": _reason(reason),
    }


def _vectors(raw: bytes) -> list[list[float]]:
    rows: list[list[float]] = np.frombuffer(raw, dtype="<f4").reshape(-1, DIM).tolist()
    return rows


class IngestActivities:
    """The cpu-side stages of ingestion, holding PostgreSQL, Redis and the settings."""

    def __init__(self, *, engine: AsyncEngine, redis: aioredis.Redis, settings: Settings) -> None:
        self.engine = engine
        self.redis = redis
        self.settings = settings

    # -- planning ------------------------------------------------------------------------
    @activity.defn(name="ingest_plan")
    async def plan(self, request: PlanRequest) -> BatchPlan:
        """The next batches of staged files after `request.after` (a short local activity)."""
        limit = request.batch_files * request.max_batches
        async with self.engine.connect() as conn:
            ids = (
                (
                    await conn.execute(
                        text(
                            "SELECT id FROM ingest_files WHERE job_id = :j AND id > :a "
                            "ORDER BY id LIMIT :n"
                        ),
                        {"j": request.job_id, "a": request.after, "n": limit},
                    )
                )
                .scalars()
                .all()
            )
            total = None
            if request.count_total:
                total = (
                    await conn.execute(
                        text("SELECT count(*) FROM ingest_files WHERE job_id = :j"),
                        {"j": request.job_id},
                    )
                ).scalar_one()
        batches = [
            FileRange(first=group[0], last=group[-1], files=len(group))
            for group in (
                ids[i : i + request.batch_files] for i in range(0, len(ids), request.batch_files)
            )
        ]
        return BatchPlan(batches=batches, files_total=total)

    # -- parse ---------------------------------------------------------------------------
    @activity.defn(name="ingest_parse")
    async def parse(self, ref: BatchRef) -> StageCounts:
        """Parse the batch's files into documents; a bad file or line is recorded, not raised.

        Commits per file, and skips files an earlier attempt already parsed.
        """
        with activity_context(ref.tenant):
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text(
                            "SELECT f.id, f.name, f.path, f.size FROM ingest_files f "
                            "WHERE f.job_id = :j AND f.id BETWEEN :a AND :b AND NOT EXISTS "
                            "(SELECT 1 FROM ingest_docs d WHERE d.file_id = f.id) ORDER BY f.id"
                        ),
                        {"j": ref.job_id, "a": ref.files.first, "b": ref.files.last},
                    )
                ).all()
            for done, row in enumerate(rows):
                activity.heartbeat(done)
                file = _File(id=row[0], name=row[1], path=row[2], size=row[3])
                await self._write_docs(ref, file, await self._parse_file(ref, file))
            return await self._counts(ref)

    async def _parse_file(self, ref: BatchRef, file: _File) -> list[dict[str, Any]]:
        max_bytes = ref.options.max_file_bytes
        if file.size > max_bytes:
            # Checked before reading: an oversized upload was staged without its bytes.
            return [
                _failed_row(
                    file.name,
                    "too_large",
                    f"file is {file.size:,} bytes, over the limit of max_bytes={max_bytes:,}",
                )
            ]
        try:
            data = await self._read(file)
        except OSError as exc:
            return [_failed_row(file.name, "unreadable", f"cannot read file: {exc}")]
        docs, errors = await in_thread(_parse, file.name, data, max_bytes)
        rows = [_failed_row(e.source or file.name, e.kind, e.reason) for e in errors]
        for doc in docs:
            rows.append(self._doc_row(doc, ref.options))
        return rows

    async def _read(self, file: _File) -> bytes:
        if file.path is None:
            async with self.engine.connect() as conn:
                data = (
                    await conn.execute(
                        text("SELECT data FROM ingest_files WHERE id = :i"), {"i": file.id}
                    )
                ).scalar_one()
            return bytes(data)
        # The API checked the path against its root; the worker checks again against its
        # own, so a staging row can never make a worker read outside the configured root.
        root = self.settings.ingest_root
        if root is None:
            raise OSError("this worker has no ingest root (KEEL_INGEST_ROOT) for server paths")
        path = under_root(Path(file.path), root)
        if path is None:
            raise OSError(f"path is outside the ingest root {root}")
        return await asyncio.to_thread(path.read_bytes)

    def _doc_row(self, doc: ParsedDocument, opts: IngestOptions) -> dict[str, Any]:
        # Job metadata (CLI flags, API field) overrides what the document declares.
        metadata = {**doc.metadata, **opts.metadata}
        title = opts.metadata.get("title") or doc.title
        metadata["title"] = title
        encoded = json.dumps(metadata, ensure_ascii=False)
        if "\x00" in doc.text or "\\u0000" in encoded or "\x00" in title:
            # PostgreSQL text and jsonb cannot hold NUL characters.
            return _failed_row(doc.source, "binary", "document contains NUL characters")
        return {
            "source": doc.source,
            "title": title,
            "metadata": encoded,
            "text": doc.text,
            "hash": content_hash(doc, title, metadata, opts),
            "prior": None,
            "status": "parsed",
            "kind": None,
            "error": None,
        }

    async def _write_docs(self, ref: BatchRef, file: _File, rows: list[dict[str, Any]]) -> None:
        sources = [r["source"] for r in rows if r["status"] == "parsed"]
        async with self.engine.begin() as conn:
            stored: dict[str, str] = dict(
                (
                    await conn.execute(
                        text(
                            "SELECT source, content_hash FROM documents "
                            "WHERE tenant_id = :t AND source = ANY(:s)"
                        ),
                        {"t": uuid.UUID(ref.tenant_id), "s": sources},
                    )
                ).all()
            )
            for row in rows:
                if row["status"] == "parsed":
                    row["prior"] = stored.get(row["source"])
                    if row["prior"] == row["hash"]:
                        row["status"] = "unchanged"
                        row["text"] = None  # nothing left to do with it
            # One transaction per file: a file's documents are staged all together or not at
            # all, which is what lets a retry skip the files that have rows.
            await conn.execute(
                text(
                    "INSERT INTO ingest_docs (job_id, file_id, source, title, metadata, text, "
                    "content_hash, prior_hash, status, error_kind, error) VALUES (:j, :f, "
                    ":source, :title, CAST(:metadata AS jsonb), :text, :hash, :prior, :status, "
                    ":kind, :error) ON CONFLICT (job_id, source) DO NOTHING"
                ),
                [{**row, "j": ref.job_id, "f": file.id} for row in rows],
            )

    async def _counts(self, ref: BatchRef) -> StageCounts:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT status, count(*), coalesce(sum(chunk_count), 0), "
                        "coalesce(sum(chunks_written), 0) FROM ingest_docs "
                        "WHERE job_id = :j AND file_id BETWEEN :a AND :b GROUP BY status"
                    ),
                    {"j": ref.job_id, "a": ref.files.first, "b": ref.files.last},
                )
            ).all()
        by_status = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}
        zero = (0, 0, 0)
        return StageCounts(
            documents=sum(by_status.get(s, zero)[0] for s in ("parsed", "chunked", "stored")),
            unchanged=by_status.get("unchanged", zero)[0],
            failed=by_status.get("failed", zero)[0],
            chunks=by_status.get("chunked", zero)[1] + by_status.get("stored", zero)[2],
        )

    # -- chunk ---------------------------------------------------------------------------
    @activity.defn(name="ingest_chunk")
    async def chunk(self, ref: BatchRef) -> StageCounts:
        """Cut each parsed document of the batch into token-aware chunks (commits per doc)."""
        opts = ref.options
        with activity_context(ref.tenant):
            async with self.engine.connect() as conn:
                doc_ids = (
                    (
                        await conn.execute(
                            text(
                                "SELECT id FROM ingest_docs WHERE job_id = :j AND file_id "
                                "BETWEEN :a AND :b AND status = 'parsed' ORDER BY id"
                            ),
                            {"j": ref.job_id, "a": ref.files.first, "b": ref.files.last},
                        )
                    )
                    .scalars()
                    .all()
                )
            for done, doc_id in enumerate(doc_ids):
                activity.heartbeat(done)
                async with self.engine.connect() as conn:
                    body = (
                        await conn.execute(
                            text("SELECT text FROM ingest_docs WHERE id = :d"), {"d": doc_id}
                        )
                    ).scalar_one()
                chunks = await in_thread(_cut, body, opts)
                async with self.engine.begin() as conn:
                    if not chunks:
                        await conn.execute(
                            text(
                                "UPDATE ingest_docs SET status = 'failed', error_kind = 'empty', "
                                "error = 'no text to index' WHERE id = :d"
                            ),
                            {"d": doc_id},
                        )
                        continue
                    await conn.execute(
                        text("DELETE FROM ingest_chunks WHERE doc_id = :d"), {"d": doc_id}
                    )
                    await conn.execute(
                        text(
                            "INSERT INTO ingest_chunks (doc_id, position, text, token_count, "
                            "char_start, char_end) VALUES (:d, :p, :x, :n, :s, :e)"
                        ),
                        [
                            {
                                "d": doc_id,
                                "p": c.position,
                                "x": c.text,
                                "n": c.token_count,
                                "s": c.char_start,
                                "e": c.char_end,
                            }
                            for c in chunks
                        ],
                    )
                    await conn.execute(
                        text(
                            "UPDATE ingest_docs SET status = 'chunked', chunk_count = :n, "
                            "text = NULL WHERE id = :d"
                        ),
                        {"d": doc_id, "n": len(chunks)},
                    )
            return await self._counts(ref)

    # -- upsert --------------------------------------------------------------------------
    @activity.defn(name="ingest_upsert")
    async def upsert(self, ref: BatchRef) -> StageCounts:
        """Store each embedded document of the batch (one transaction each), then drop cached
        answers that cited documents which changed."""
        with activity_context(ref.tenant):
            async with self.engine.connect() as conn:
                docs = (
                    await conn.execute(
                        text(
                            "SELECT id, source, title, metadata, content_hash, prior_hash, "
                            "chunk_count FROM ingest_docs WHERE job_id = :j AND file_id "
                            "BETWEEN :a AND :b AND status = 'chunked' ORDER BY id"
                        ),
                        {"j": ref.job_id, "a": ref.files.first, "b": ref.files.last},
                    )
                ).all()
            for done, doc in enumerate(docs):
                activity.heartbeat(done)
                await self._store(ref, *doc)
            while await apply_invalidations(self.engine, self.redis) >= 500:
                activity.heartbeat()
            return await self._counts(ref)

    async def _store(
        self,
        ref: BatchRef,
        doc_id: int,
        source: str,
        title: str,
        metadata: dict[str, Any],
        digest: str,
        prior: str | None,
        chunk_count: int,
    ) -> None:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT position, text, token_count, char_start, char_end, embedding, "
                        "windows, window_spans FROM ingest_chunks WHERE doc_id = :d "
                        "ORDER BY position"
                    ),
                    {"d": doc_id},
                )
            ).all()
        if len(rows) != chunk_count or any(r[5] is None or r[6] is None for r in rows):
            await self._fail(doc_id, "store_failed", "chunks were not all embedded")
            return
        records = [
            ChunkRecord(
                position=r[0],
                text=r[1],
                token_count=r[2],
                embedding=_vectors(r[5])[0],
                windows=_vectors(r[6]),
                metadata={
                    **metadata,
                    "source": source,
                    "char_start": r[3],
                    "char_end": r[4],
                    "windows": r[7],
                },
            )
            for r in rows
        ]
        try:
            outcome = await upsert_document(
                self.engine,
                tenant_id=uuid.UUID(ref.tenant_id),
                source=source,
                title=title,
                metadata=metadata,
                content_hash=digest,
                chunks=records,
            )
        except (DataError, IntegrityError) as exc:
            # The document itself is unstorable (bad value): retrying cannot help.
            await self._fail(doc_id, "store_failed", f"cannot store document: {exc.orig}")
            return
        written = outcome.chunks_written
        if outcome.status == "unchanged" and prior != digest:
            # Committed by an earlier attempt of this job that died before reporting it.
            written = chunk_count
        async with self.engine.begin() as conn:
            await conn.execute(
                text("UPDATE ingest_docs SET status = 'stored', chunks_written = :w WHERE id = :d"),
                {"d": doc_id, "w": written},
            )
            await conn.execute(text("DELETE FROM ingest_chunks WHERE doc_id = :d"), {"d": doc_id})

    async def _fail(self, doc_id: int, kind: str, reason: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE ingest_docs SET status = 'failed', error_kind = :k, error = :e "
                    "WHERE id = :d"
                ),
                {"d": doc_id, "k": kind, "e": _reason(reason)},
            )

    # -- the end of a job ----------------------------------------------------------------
    @activity.defn(name="ingest_summarize")
    async def summarize(self, ref: JobRef) -> JobSummary:
        """The job's outcome from its staging rows: exact counts and the failures, by file.

        Files whose batch never finished (it failed after all retries) count as failed.
        """
        params = {"j": ref.job_id}
        async with self.engine.connect() as conn:
            files_total = (
                await conn.execute(
                    text("SELECT count(*) FROM ingest_files WHERE job_id = :j"), params
                )
            ).scalar_one()
            by_status = {
                r[0]: (int(r[1]), int(r[2]))
                for r in await conn.execute(
                    text(
                        "SELECT status, count(*), coalesce(sum(chunks_written), 0) "
                        "FROM ingest_docs WHERE job_id = :j GROUP BY status"
                    ),
                    params,
                )
            }
            files_failed = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM ingest_files f WHERE f.job_id = :j AND NOT EXISTS "
                        "(SELECT 1 FROM ingest_docs d WHERE d.file_id = f.id "
                        "AND d.status IN ('stored', 'unchanged'))"
                    ),
                    params,
                )
            ).scalar_one()
            failures = (
                await conn.execute(
                    text(
                        "SELECT source, error_kind, error FROM ingest_docs "
                        "WHERE job_id = :j AND status = 'failed' "
                        "UNION ALL SELECT source, 'not_processed', "
                        "'its batch failed before the document was stored' FROM ingest_docs "
                        "WHERE job_id = :j AND status IN ('parsed', 'chunked') "
                        "UNION ALL SELECT f.name, 'not_processed', "
                        "'its batch failed before the file was parsed' FROM ingest_files f "
                        "WHERE f.job_id = :j AND NOT EXISTS "
                        "(SELECT 1 FROM ingest_docs d WHERE d.file_id = f.id) "
                        "ORDER BY 1 LIMIT :n"
                    ),
                    {**params, "n": MAX_REPORTED_FAILURES + 1},
                )
            ).all()
            unprocessed_files = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM ingest_files f WHERE f.job_id = :j AND NOT EXISTS "
                        "(SELECT 1 FROM ingest_docs d WHERE d.file_id = f.id)"
                    ),
                    params,
                )
            ).scalar_one()
        zero = (0, 0)
        failed = (
            by_status.get("failed", zero)[0]
            + by_status.get("parsed", zero)[0]
            + by_status.get("chunked", zero)[0]
            + int(unprocessed_files)
        )
        return JobSummary(
            files_total=int(files_total),
            files_failed=int(files_failed),
            documents_stored=by_status.get("stored", zero)[0],
            documents_unchanged=by_status.get("unchanged", zero)[0],
            documents_failed=failed,
            chunks_written=by_status.get("stored", zero)[1],
            failures=[
                IngestFailure(source=s, kind=k or "failed", reason=e or "")
                for s, k, e in failures[:MAX_REPORTED_FAILURES]
            ],
            failures_omitted=max(0, failed - MAX_REPORTED_FAILURES),
        )

    @activity.defn(name="ingest_cleanup")
    async def cleanup(self, ref: JobRef) -> int:
        """Delete the job's staging rows (files, documents, chunks); idempotent."""
        dropped = await drop_job(self.engine, ref.job_id)
        log.info("ingest staging dropped", job_id=ref.job_id, files=dropped)
        return dropped
