"""Ingest activities on the cpu queue: parse, chunk and store a batch of a job (the job-level
steps, planning and the summary, are in `activities.ingest_jobs`).

Each stage reads what the previous one left in the staging tables (migration 0003) and
writes its own results there, so workflow history carries only a job id and a range of file
ids. Each stage is also its own checkpoint: it commits per group of files (parse) or of
documents (chunk, upsert; up to `GROUP_DOCS` each) and skips what an earlier attempt already
finished, so a retry after a worker dies resumes where the dead attempt stopped instead of
starting over.

Exactly-once storage comes from `activities.store.store_staged`: one transaction per group
of documents, each keyed by tenant + source + content hash, which also marks the staged
copies stored, so a retry never stores a committed document twice. Storing the same hash
again writes nothing; the `prior_hash` noted at parse time tells "stored since this job
parsed it" (a concurrent job with the same file) from "unchanged before this job".

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
from activities.store import StagedDocument, apply_invalidations, store_staged
from keel.contracts.ingest import BatchRef, IngestOptions, StageCounts
from keel.schema import EMBEDDING_DIM
from keel.settings import Settings
from keel.telemetry import activity_context, get_logger
from keel.text.chunking import Chunk
from keel.text.sections import Sections

T = TypeVar("T")

log = get_logger("keel.ingest")


# A group of documents is chunked, or stored, in one transaction: the triggers that keep the
# BM25 statistics and the corpus generation run once per statement, so a group pays them once,
# and the worker sends a few statements a group instead of a few a document. A group is small
# enough that a retry redoes little and the tenant's other writers wait little.
GROUP_DOCS = 32
PARSE_GROUP_BYTES = 8_000_000  # file bytes read into memory at once when parsing
CHUNK_GROUP_CHARS = 2_000_000  # text read into memory at once when chunking
STORE_GROUP_CHUNKS = 128  # chunks copied by one store


def _groups(items: list[tuple[int, int]], *, unit: int) -> list[list[int]]:
    """Cut (id, size) items, in order, into groups of at most GROUP_DOCS ids and `unit` of
    size (a larger item is a group of its own)."""
    groups: list[list[int]] = []
    size = 0
    for item_id, item_size in items:
        if not groups or len(groups[-1]) >= GROUP_DOCS or size + item_size > unit:
            groups.append([])
            size = 0
        groups[-1].append(item_id)
        size += item_size
    return groups


def _cut_all(
    bodies: list[tuple[int, str]], opts: IngestOptions
) -> list[tuple[int, list[Chunk], list[str | None]]]:
    """Each document's chunks and the section heading each chunk starts in."""
    cuts = []
    for doc_id, body in bodies:
        chunks = cut(body, opts)
        sections = Sections(body)
        cuts.append((doc_id, chunks, [sections.at(c.char_start) for c in chunks]))
    return cuts


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

        Commits per group of files (`_groups`: a file's documents are staged together or not
        at all), and skips files an earlier attempt already parsed.
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
            files = {r[0]: StagedFile(id=r[0], name=r[1], path=r[2], size=r[3]) for r in rows}
            done = 0
            for group in _groups([(f.id, f.size) for f in files.values()], unit=PARSE_GROUP_BYTES):
                activity.heartbeat(done)
                staged = [files[i] for i in group]
                stored = await self._stored_bytes(staged, ref.options.max_file_bytes)
                parsed = [(f, await self._parse_file(ref, f, stored.get(f.id))) for f in staged]
                await self._write_docs(ref, parsed)
                done += len(group)
            return await self._counts(ref)

    async def _stored_bytes(self, files: list[StagedFile], max_bytes: int) -> dict[int, bytes]:
        """The bytes of the files uploaded into staging (not those named by a server path, nor
        those too large to have been staged), in one read."""
        ids = [f.id for f in files if f.path is None and f.size <= max_bytes]
        if not ids:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT id, data FROM ingest_files WHERE id = ANY(:i)"), {"i": ids}
            )
            return {r[0]: bytes(r[1]) for r in rows if r[1] is not None}

    async def _parse_file(
        self, ref: BatchRef, file: StagedFile, stored: bytes | None
    ) -> list[dict[str, Any]]:
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
            data = stored if stored is not None else await self._read(file)
        except OSError as exc:
            return [failed_row(file.name, "unreadable", f"cannot read file: {exc}")]
        docs, errors = await in_thread(parse_bytes, file.name, data, max_bytes)
        rows = [failed_row(e.source or file.name, e.kind, e.reason) for e in errors]
        for doc in docs:
            rows.append(doc_row(doc, ref.options))
        return rows

    async def _read(self, file: StagedFile) -> bytes:
        if file.path is None:
            raise OSError("the upload's bytes are missing from staging")
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
        self, ref: BatchRef, parsed: list[tuple[StagedFile, list[dict[str, Any]]]]
    ) -> None:
        sources = [r["source"] for _, rows in parsed for r in rows if r["status"] == "parsed"]
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
            staged = []
            for file, rows in parsed:
                for row in rows:
                    if row["status"] == "parsed":
                        row["prior"] = stored.get(row["source"])
                        if row["prior"] == row["hash"]:
                            row["status"] = "unchanged"
                            row["text"] = None  # nothing left to do with it
                    staged.append({**row, "j": ref.job_id, "f": file.id})
            # One transaction per group of files: a file's documents are staged all together or
            # not at all, which is what lets a retry skip the files that have rows.
            await conn.execute(
                text(
                    "INSERT INTO ingest_docs (job_id, file_id, source, title, metadata, text, "
                    "content_hash, prior_hash, status, error_kind, error) VALUES (:j, :f, "
                    ":source, :title, CAST(:metadata AS jsonb), :text, :hash, :prior, :status, "
                    ":kind, :error) ON CONFLICT (job_id, source) DO NOTHING"
                ),
                staged,
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
        """Cut each parsed document of the batch into token-aware chunks (commits per group
        of documents, `_groups`)."""
        opts = ref.options
        with activity_context(ref.tenant):
            async with self.engine.connect() as conn:
                sizes = (
                    await conn.execute(
                        text(
                            "SELECT id, length(text) FROM ingest_docs WHERE job_id = :j AND "
                            "file_id BETWEEN :a AND :b AND status = 'parsed' ORDER BY id"
                        ),
                        {"j": ref.job_id, "a": ref.files.first, "b": ref.files.last},
                    )
                ).all()
            done = 0
            for group in _groups([(r[0], r[1] or 0) for r in sizes], unit=CHUNK_GROUP_CHARS):
                activity.heartbeat(done)
                # One transaction per group: read, cut, write.
                async with self.engine.begin() as conn:
                    bodies = (
                        await conn.execute(
                            text("SELECT id, text FROM ingest_docs WHERE id = ANY(:d) ORDER BY id"),
                            {"d": group},
                        )
                    ).all()
                    cuts = await in_thread(_cut_all, [(r[0], r[1]) for r in bodies], opts)
                    await self._write_chunks(conn, cuts)
                done += len(group)
            return await self._counts(ref)

    @staticmethod
    async def _write_chunks(
        conn: AsyncConnection, cuts: list[tuple[int, list[Chunk], list[str | None]]]
    ) -> None:
        empty = [doc_id for doc_id, chunks, _ in cuts if not chunks]
        cut_docs = [(doc_id, chunks, sections) for doc_id, chunks, sections in cuts if chunks]
        if empty:
            await conn.execute(
                text(
                    "UPDATE ingest_docs SET status = 'failed', error_kind = 'empty', "
                    "error = 'no text to index' WHERE id = ANY(:d)"
                ),
                {"d": empty},
            )
        if not cut_docs:
            return
        ids = [doc_id for doc_id, _, _ in cut_docs]
        await conn.execute(text("DELETE FROM ingest_chunks WHERE doc_id = ANY(:d)"), {"d": ids})
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
                    "h": section,
                }
                for doc_id, chunks, sections in cut_docs
                for c, section in zip(chunks, sections, strict=True)
            ],
        )
        await conn.execute(
            text(
                "UPDATE ingest_docs d SET status = 'chunked', chunk_count = u.n, text = NULL "
                "FROM unnest(CAST(:d AS bigint[]), CAST(:n AS int[])) AS u(id, n) "
                "WHERE d.id = u.id"
            ),
            {"d": ids, "n": [len(chunks) for _, chunks, _ in cut_docs]},
        )

    # -- upsert --------------------------------------------------------------------------
    @activity.defn(name="ingest_upsert")
    async def upsert(self, ref: BatchRef) -> StageCounts:
        """Store the batch's embedded documents (one transaction per group of documents,
        `_groups`), then drop cached answers that cited documents which changed."""
        with activity_context(ref.tenant):
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text(
                            "SELECT id, source, title, metadata, content_hash, prior_hash, "
                            "chunk_count FROM ingest_docs WHERE job_id = :j AND file_id "
                            "BETWEEN :a AND :b AND status = 'chunked' ORDER BY id"
                        ),
                        {"j": ref.job_id, "a": ref.files.first, "b": ref.files.last},
                    )
                ).all()
            docs = {r[0]: (StagedDocument(r[0], r[1], r[2], r[3], r[4], r[6]), r[5]) for r in rows}
            done = 0
            for group in _groups([(r[0], r[6]) for r in rows], unit=STORE_GROUP_CHUNKS):
                activity.heartbeat(done)
                try:
                    await self._store(ref, [docs[d] for d in group])
                except (DataError, IntegrityError):
                    # Some document of the group is unstorable (a bad value): store them one by
                    # one, so it fails alone.
                    for doc_id in group:
                        try:
                            await self._store(ref, [docs[doc_id]])
                        except (DataError, IntegrityError) as exc:
                            await self._fail(
                                doc_id, "store_failed", f"cannot store document: {exc.orig}"
                            )
                done += len(group)
            while await apply_invalidations(self.engine, self.redis) >= 500:
                activity.heartbeat()
            return await self._counts(ref)

    async def _store(self, ref: BatchRef, docs: list[tuple[StagedDocument, str | None]]) -> None:
        # One transaction checks the staged chunks, copies them into the documents' chunks
        # (their vectors stay in PostgreSQL) and marks the documents stored: a worker killed
        # anywhere in between leaves either all of it or none of it.
        ids = [doc.doc_id for doc, _ in docs]
        async with self.engine.begin() as conn:
            counts = {
                r[0]: (r[1], r[2], r[3])
                for r in (
                    await conn.execute(
                        text(
                            "SELECT doc_id, count(*), count(embedding), count(*) FILTER (WHERE "
                            "vector_dims(windows) % :dim = 0) FROM ingest_chunks "
                            "WHERE doc_id = ANY(:d) GROUP BY doc_id"
                        ),
                        {"d": ids, "dim": EMBEDDING_DIM},
                    )
                ).all()
            }
            ready = []
            for doc, prior in docs:
                staged, embedded, packed = counts.get(doc.doc_id, (0, 0, 0))
                if staged == embedded == packed == doc.chunk_count:
                    ready.append((doc, prior))
                else:
                    await self._mark_failed(
                        conn, doc.doc_id, "store_failed", "chunks were not all embedded"
                    )
            if not ready:
                return
            outcomes = await store_staged(conn, uuid.UUID(ref.tenant_id), [doc for doc, _ in ready])
            written = [
                # Stored with this exact content since this job parsed it (a concurrent job
                # with the same file): it is stored as this job asked, so count it.
                doc.chunk_count
                if outcome.status == "unchanged" and prior != doc.content_hash
                else outcome.chunks_written
                for (doc, prior), outcome in zip(ready, outcomes, strict=True)
            ]
            stored = [doc.doc_id for doc, _ in ready]
            await conn.execute(
                text(
                    "UPDATE ingest_docs d SET status = 'stored', chunks_written = u.w "
                    "FROM unnest(CAST(:d AS bigint[]), CAST(:w AS int[])) AS u(id, w) "
                    "WHERE d.id = u.id"
                ),
                {"d": stored, "w": written},
            )
            await conn.execute(
                text("DELETE FROM ingest_chunks WHERE doc_id = ANY(:d)"), {"d": stored}
            )

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
