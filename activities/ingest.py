"""Ingest activities on the cpu queue: parse, chunk and store a batch of a job (the job-level
steps, planning and the summary, are in `activities.ingest_jobs`).

Each stage reads what the previous one left in the staging tables (migration 0003) and
writes its own results there, so workflow history carries only a job id and a range of file
ids. Each stage is also its own checkpoint: it commits per file (parse) or per document
(chunk, upsert) and skips what an earlier attempt already finished, so a retry after a
worker dies resumes where the dead attempt stopped instead of starting over.

Exactly-once storage comes from `activities.store.store_document`: one transaction per
document, keyed by tenant + source + content hash, which also marks the staged copy stored,
so a retry never stores a committed document twice. Storing the same hash again writes
nothing; the `prior_hash` noted at parse time tells "stored since this job parsed it" (a
concurrent job with the same file) from "unchanged before this job".

Embedding runs on the gpu queue (`activities.ingest_embed`).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity

from activities.heartbeat import in_thread
from activities.ingest_rows import (
    StagedFile,
    cut,
    doc_row,
    failed_row,
    parse_bytes,
    reason_text,
)
from activities.staging import under_root
from activities.store import StagedChunks, apply_invalidations, store_document
from keel.contracts.ingest import (
    BatchRef,
    StageCounts,
)
from keel.schema import EMBEDDING_DIM
from keel.settings import Settings
from keel.telemetry import activity_context, get_logger
from keel.text.sections import Sections

T = TypeVar("T")

log = get_logger("keel.ingest")


class IngestActivities:
    """The cpu-side stages of ingestion, holding PostgreSQL, Redis and the settings."""

    def __init__(self, *, engine: AsyncEngine, redis: aioredis.Redis, settings: Settings) -> None:
        self.engine = engine
        self.redis = redis
        self.settings = settings

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
                file = StagedFile(id=row[0], name=row[1], path=row[2], size=row[3])
                await self._write_docs(ref, file, await self._parse_file(ref, file))
            return await self._counts(ref)

    async def _parse_file(self, ref: BatchRef, file: StagedFile) -> list[dict[str, Any]]:
        max_bytes = ref.options.max_file_bytes
        if file.size > max_bytes:
            # Checked before reading: an oversized upload was staged without its bytes.
            return [
                failed_row(
                    file.name,
                    "too_large",
                    f"file is {file.size:,} bytes, over the limit of max_bytes={max_bytes:,}",
                )
            ]
        try:
            data = await self._read(file)
        except OSError as exc:
            return [failed_row(file.name, "unreadable", f"cannot read file: {exc}")]
        docs, errors = await in_thread(parse_bytes, file.name, data, max_bytes)
        rows = [failed_row(e.source or file.name, e.kind, e.reason) for e in errors]
        for doc in docs:
            rows.append(doc_row(doc, ref.options))
        return rows

    async def _read(self, file: StagedFile) -> bytes:
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

    async def _write_docs(
        self, ref: BatchRef, file: StagedFile, rows: list[dict[str, Any]]
    ) -> None:
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
                # One connection and transaction per document: read, cut, write.
                async with self.engine.begin() as conn:
                    body = (
                        await conn.execute(
                            text("SELECT text FROM ingest_docs WHERE id = :d"), {"d": doc_id}
                        )
                    ).scalar_one()
                    chunks = await in_thread(cut, body, opts)
                    sections = Sections(body)
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
                            "char_start, char_end, section) VALUES (:d, :p, :x, :n, :s, :e, :h)"
                        ),
                        [
                            {
                                "d": doc_id,
                                "p": c.position,
                                "x": c.text,
                                "n": c.token_count,
                                "s": c.char_start,
                                "e": c.char_end,
                                "h": sections.at(c.char_start),
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
        # One transaction checks the staged chunks, copies them into the document's chunks
        # (their vectors stay in PostgreSQL) and marks the document stored: a worker killed
        # anywhere in between leaves either all of it or none of it.
        try:
            async with self.engine.begin() as conn:
                staged, embedded, packed = (
                    await conn.execute(
                        text(
                            "SELECT count(*), count(embedding), count(*) FILTER (WHERE "
                            "vector_dims(windows) % :dim = 0) FROM ingest_chunks "
                            "WHERE doc_id = :d"
                        ),
                        {"d": doc_id, "dim": EMBEDDING_DIM},
                    )
                ).one()
                if not staged == embedded == packed == chunk_count:
                    await self._mark_failed(
                        conn, doc_id, "store_failed", "chunks were not all embedded"
                    )
                    return
                outcome = await store_document(
                    conn,
                    tenant_id=uuid.UUID(ref.tenant_id),
                    source=source,
                    title=title,
                    metadata=metadata,
                    content_hash=digest,
                    chunks=StagedChunks(doc_id=doc_id, count=chunk_count),
                )
                written = outcome.chunks_written
                if outcome.status == "unchanged" and prior != digest:
                    # Stored with this exact content since this job parsed it (a concurrent
                    # job with the same file): it is stored as this job asked, so count it.
                    written = chunk_count
                await conn.execute(
                    text(
                        "UPDATE ingest_docs SET status = 'stored', chunks_written = :w "
                        "WHERE id = :d"
                    ),
                    {"d": doc_id, "w": written},
                )
                await conn.execute(
                    text("DELETE FROM ingest_chunks WHERE doc_id = :d"), {"d": doc_id}
                )
        except (DataError, IntegrityError) as exc:
            # The document itself is unstorable (bad value): retrying cannot help.
            await self._fail(doc_id, "store_failed", f"cannot store document: {exc.orig}")

    async def _fail(self, doc_id: int, kind: str, reason: str) -> None:
        async with self.engine.begin() as conn:
            await self._mark_failed(conn, doc_id, kind, reason)

    @staticmethod
    async def _mark_failed(conn: AsyncConnection, doc_id: int, kind: str, reason: str) -> None:
        await conn.execute(
            text(
                "UPDATE ingest_docs SET status = 'failed', error_kind = :k, error = :e "
                "WHERE id = :d"
            ),
            {"d": doc_id, "k": kind, "e": reason_text(reason)},
        )
