"""Document storage: idempotent, atomic upserts of documents with their chunks and windows.

A document is keyed by tenant + source. Storing it again with the same content hash writes
nothing. A changed document has its chunks replaced inside one transaction (readers see the
old chunks or the new, never a mix), its version bumped, and a `cache_invalidations` row
written in the same transaction, so cached answers that cited it are dropped even if the
process dies right after commit (`apply_invalidations` finishes the job).

`store_document` stores one document from its chunk records; `store_staged` stores a group
of ingestion's staged documents with one statement per step for the whole group. Both lock
and create documents in source order, so writers that share documents queue rather than
deadlock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keel.contracts.ingest import UpsertOutcome
from keel.schema import EMBEDDING_DIM


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk ready to store: its text, its summary vector and its window vectors."""

    position: int
    text: str
    token_count: int
    embedding: Sequence[float]
    windows: Sequence[Sequence[float]]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StagedDocument:
    """An ingestion document whose embedded chunks are still in `ingest_chunks`: stored by
    SQL that copies them across, so their vectors never leave PostgreSQL.

    Each chunk's metadata is the document's, plus `source`, `char_start`, `char_end`,
    `windows` (the windows' character spans) and `section` when it has one.
    """

    doc_id: int  # the `ingest_docs` row
    source: str
    title: str
    metadata: dict[str, Any]
    content_hash: str
    chunk_count: int


@dataclass(frozen=True)
class _Head:
    """What `documents` holds of a document."""

    source: str
    title: str
    metadata: dict[str, Any]
    content_hash: str


def _head_columns(heads: Sequence[_Head]) -> dict[str, list[str]]:
    """Titles, metadata and hashes as the arrays the statements unnest."""
    return {
        "x": [h.title for h in heads],
        "m": [json.dumps(h.metadata) for h in heads],
        "h": [h.content_hash for h in heads],
    }


def _vector(values: Sequence[float]) -> str:
    return "[" + ",".join(f"{float(v):.7g}" for v in values) + "]"


async def _lock_documents(
    conn: AsyncConnection, tenant_id: uuid.UUID, sources: Sequence[str]
) -> dict[str, tuple[uuid.UUID, str, int]]:
    # In source order, like the inserts: writers that share documents queue, never deadlock.
    rows = (
        await conn.execute(
            text(
                "SELECT id, source, content_hash, version FROM documents "
                "WHERE tenant_id = :t AND source = ANY(:s) ORDER BY source FOR UPDATE"
            ),
            {"t": tenant_id, "s": sorted(sources)},
        )
    ).all()
    return {r[1]: (r[0], r[2], r[3]) for r in rows}


async def _claim(
    conn: AsyncConnection, tenant_id: uuid.UUID, heads: Sequence[_Head]
) -> list[UpsertOutcome]:
    """Create or update the documents' rows; each outcome's `chunks_written` is 0 until the
    caller writes the chunks of the created and updated ones."""
    if len({h.source for h in heads}) != len(heads):
        raise ValueError("a document source appears twice in one store")
    current = await _lock_documents(conn, tenant_id, [h.source for h in heads])
    new = sorted((h for h in heads if h.source not in current), key=lambda h: h.source)
    created: dict[str, uuid.UUID] = {}
    if new:
        rows = (
            await conn.execute(
                text(
                    "INSERT INTO documents (tenant_id, source, title, metadata, content_hash) "
                    "SELECT :t, s, x, CAST(m AS jsonb), h FROM unnest(CAST(:s AS text[]), "
                    "CAST(:x AS text[]), CAST(:m AS text[]), CAST(:h AS text[])) AS u(s, x, m, h) "
                    "ON CONFLICT (tenant_id, source) DO NOTHING RETURNING id, source"
                ),
                {"t": tenant_id, "s": [h.source for h in new], **_head_columns(new)},
            )
        ).all()
        created = {source: document_id for document_id, source in rows}
        raced = [h.source for h in new if h.source not in created]
        if raced:  # concurrent writers created these first: take their rows
            current.update(await _lock_documents(conn, tenant_id, raced))
    changed = [h for h in heads if h.source in current and current[h.source][1] != h.content_hash]
    if changed:
        ids = [current[h.source][0] for h in changed]
        await conn.execute(text("DELETE FROM chunks WHERE document_id = ANY(:d)"), {"d": ids})
        await conn.execute(
            text(
                "UPDATE documents d SET content_hash = u.h, version = d.version + 1, "
                "title = u.x, metadata = CAST(u.m AS jsonb), updated_at = now() "
                "FROM unnest(CAST(:d AS uuid[]), CAST(:h AS text[]), CAST(:x AS text[]), "
                "CAST(:m AS text[])) AS u(id, h, x, m) WHERE d.id = u.id"
            ),
            {"d": ids, **_head_columns(changed)},
        )
        await _invalidations(conn, tenant_id, ids, "changed")
    outcomes = []
    for head in heads:
        if head.source in created:
            outcomes.append(
                UpsertOutcome(
                    document_id=str(created[head.source]),
                    status="created",
                    version=1,
                    chunks_written=0,
                )
            )
            continue
        document_id, old_hash, version = current[head.source]
        same = old_hash == head.content_hash
        outcomes.append(
            UpsertOutcome(
                document_id=str(document_id),
                status="unchanged" if same else "updated",
                version=version if same else version + 1,
                chunks_written=0,
            )
        )
    return outcomes


async def upsert_document(
    engine: AsyncEngine,
    *,
    tenant_id: uuid.UUID,
    source: str,
    title: str,
    metadata: dict[str, Any],
    content_hash: str,
    chunks: Sequence[ChunkRecord],
) -> UpsertOutcome:
    """Store a document and its chunks in a transaction of its own (see `store_document`)."""
    async with engine.begin() as conn:
        return await store_document(
            conn,
            tenant_id=tenant_id,
            source=source,
            title=title,
            metadata=metadata,
            content_hash=content_hash,
            chunks=chunks,
        )


async def store_document(
    conn: AsyncConnection,
    *,
    tenant_id: uuid.UUID,
    source: str,
    title: str,
    metadata: dict[str, Any],
    content_hash: str,
    chunks: Sequence[ChunkRecord],
) -> UpsertOutcome:
    """Store a document and its chunks inside the caller's transaction; unchanged content
    writes nothing. The caller commits, so what it writes beside commits with the document
    or not at all."""
    (outcome,) = await _claim(conn, tenant_id, [_Head(source, title, metadata, content_hash)])
    if outcome.status == "unchanged":
        return outcome
    written = await _insert_chunks(conn, tenant_id, uuid.UUID(outcome.document_id), chunks)
    return outcome.model_copy(update={"chunks_written": written})


async def store_staged(
    conn: AsyncConnection, tenant_id: uuid.UUID, docs: Sequence[StagedDocument]
) -> list[UpsertOutcome]:
    """Store staged documents, in order, inside the caller's transaction: one statement per
    step for all of them, so the BM25 and corpus-generation triggers run once per step, not
    once per document. Unchanged content writes nothing. The caller commits (ingestion marks
    the staged documents stored in the same transaction), so the documents are stored all
    together or not at all.
    """
    outcomes = await _claim(
        conn,
        tenant_id,
        [_Head(d.source, d.title, d.metadata, d.content_hash) for d in docs],
    )
    writing = [(d, o) for d, o in zip(docs, outcomes, strict=True) if o.status != "unchanged"]
    if writing:
        await _insert_staged(conn, tenant_id, writing)
    return [
        o if o.status == "unchanged" else o.model_copy(update={"chunks_written": d.chunk_count})
        for d, o in zip(docs, outcomes, strict=True)
    ]


async def delete_document(engine: AsyncEngine, *, tenant_id: uuid.UUID, source: str) -> bool:
    """Delete a document and (by cascade) its chunks; True if it existed."""
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                text("DELETE FROM documents WHERE tenant_id = :t AND source = :s RETURNING id"),
                {"t": tenant_id, "s": source},
            )
        ).one_or_none()
        if row is None:
            return False
        await _invalidations(conn, tenant_id, [row[0]], "deleted")
        return True


async def _invalidations(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    document_ids: Sequence[uuid.UUID],
    reason: Literal["changed", "deleted"],
) -> None:
    await conn.execute(
        text(
            "INSERT INTO cache_invalidations (tenant_id, document_id, reason) "
            "SELECT :t, d, :r FROM unnest(CAST(:d AS text[])) AS u(d)"
        ),
        {"t": tenant_id, "d": [str(d) for d in document_ids], "r": reason},
    )


async def _insert_chunks(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    document_id: uuid.UUID,
    chunks: Sequence[ChunkRecord],
) -> int:
    if not chunks:
        return 0
    ids = (
        await conn.execute(
            text(
                "INSERT INTO chunks (tenant_id, document_id, position, text, token_count, "
                "embedding, metadata) SELECT :t, :d, p, x, n, CAST(e AS vector), CAST(m AS jsonb) "
                "FROM unnest(CAST(:positions AS int[]), CAST(:texts AS text[]), "
                "CAST(:tokens AS int[]), CAST(:embeddings AS text[]), CAST(:metas AS text[])) "
                "AS u(p, x, n, e, m) RETURNING id, position"
            ),
            {
                "t": tenant_id,
                "d": document_id,
                "positions": [c.position for c in chunks],
                "texts": [c.text for c in chunks],
                "tokens": [c.token_count for c in chunks],
                "embeddings": [_vector(c.embedding) for c in chunks],
                "metas": [json.dumps(c.metadata) for c in chunks],
            },
        )
    ).all()
    by_position = {position: chunk_id for chunk_id, position in ids}
    windows = [
        (by_position[c.position], index, _vector(vector))
        for c in chunks
        for index, vector in enumerate(c.windows)
    ]
    await conn.execute(
        text(
            "INSERT INTO chunk_windows (chunk_id, window_index, tenant_id, embedding) "
            "SELECT c, i, :t, CAST(e AS vector) FROM unnest(CAST(:chunks AS bigint[]), "
            "CAST(:idx AS int[]), CAST(:emb AS text[])) AS u(c, i, e)"
        ),
        {
            "t": tenant_id,
            "chunks": [w[0] for w in windows],
            "idx": [w[1] for w in windows],
            "emb": [w[2] for w in windows],
        },
    )
    return len(chunks)


async def _insert_staged(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    writing: Sequence[tuple[StagedDocument, UpsertOutcome]],
) -> None:
    # One statement for every document: the chunks are inserted by the CTE (in document
    # order, then position, as storing them one by one would), their windows by the outer
    # INSERT, each window cut from the chunk's packed window vectors (EMBEDDING_DIM floats).
    await conn.execute(
        text(
            "WITH docs AS ("
            " SELECT * FROM unnest(CAST(:staged AS bigint[]), CAST(:ids AS uuid[]),"
            " CAST(:metas AS text[]), CAST(:sources AS text[]))"
            " WITH ORDINALITY AS u(doc_id, document_id, m, src, n)),"
            " staged AS ("
            " SELECT docs.n, docs.document_id, c.position, c.text, c.token_count, c.embedding,"
            " c.windows, CAST(docs.m AS jsonb) || jsonb_build_object('source', docs.src,"
            " 'char_start', c.char_start, 'char_end', c.char_end, 'windows', c.window_spans)"
            " || CASE WHEN c.section <> '' THEN jsonb_build_object('section', c.section)"
            " ELSE '{}'::jsonb END AS metadata"
            " FROM ingest_chunks c JOIN docs USING (doc_id)),"
            " stored AS ("
            " INSERT INTO chunks (tenant_id, document_id, position, text, token_count,"
            " embedding, metadata)"
            " SELECT :t, document_id, position, text, token_count, embedding, metadata"
            " FROM staged ORDER BY n, position RETURNING id, document_id, position)"
            " INSERT INTO chunk_windows (chunk_id, window_index, tenant_id, embedding)"
            " SELECT stored.id, w.i, :t, subvector(staged.windows, w.i * :dim + 1, :dim)"
            " FROM stored JOIN staged USING (document_id, position)"
            " CROSS JOIN LATERAL generate_series(0, vector_dims(staged.windows) / :dim - 1)"
            " AS w(i) ORDER BY stored.id, w.i"
        ),
        {
            "staged": [d.doc_id for d, _ in writing],
            "ids": [uuid.UUID(o.document_id) for _, o in writing],
            "metas": [json.dumps(d.metadata) for d, _ in writing],
            "sources": [d.source for d, _ in writing],
            "t": tenant_id,
            "dim": EMBEDDING_DIM,
        },
    )


async def apply_invalidations(engine: AsyncEngine, redis: aioredis.Redis) -> int:
    """Drop cached answers that cited changed or deleted documents; returns events handled.

    Safe to run concurrently and repeatedly: each event is claimed with SKIP LOCKED and marked
    processed in the same transaction that deletes the semantic-cache rows.
    """
    handled = 0
    async with engine.begin() as conn:
        events = (
            await conn.execute(
                text(
                    "SELECT id, tenant_id, document_id FROM cache_invalidations "
                    "WHERE processed_at IS NULL ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED"
                )
            )
        ).all()
        for event_id, tenant_id, document_id in events:
            await conn.execute(
                text(
                    "DELETE FROM semantic_cache WHERE tenant_id = :t "
                    "AND cited_document_ids @> ARRAY[CAST(:d AS text)]"
                ),
                {"t": tenant_id, "d": document_id},
            )
            index = f"keel:cites:{tenant_id}:{document_id}"
            keys = await redis.smembers(index)
            if keys:
                await redis.delete(*keys)
            await redis.delete(index)
            await conn.execute(
                text("UPDATE cache_invalidations SET processed_at = now() WHERE id = :i"),
                {"i": event_id},
            )
            handled += 1
    return handled
