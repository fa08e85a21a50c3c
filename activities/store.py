"""Document storage: idempotent, atomic upserts of documents with their chunks and windows.

A document is keyed by tenant + source. Storing it again with the same content hash writes
nothing. A changed document has its chunks replaced inside one transaction (readers see the
old chunks or the new, never a mix), its version bumped, and a `cache_invalidations` row
written in the same transaction, so cached answers that cited it are dropped even if the
process dies right after commit (`apply_invalidations` finishes the job).
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
class StagedChunks:
    """An ingestion document's embedded chunks, still in `ingest_chunks`: stored by SQL that
    copies them across, so their vectors never leave PostgreSQL.

    Each chunk's metadata is the document's, plus `source`, `char_start`, `char_end`,
    `windows` (the windows' character spans) and `section` when it has one.
    """

    doc_id: int
    count: int


def _vector(values: Sequence[float]) -> str:
    return "[" + ",".join(f"{float(v):.7g}" for v in values) + "]"


async def _lock_document(
    conn: AsyncConnection, tenant_id: uuid.UUID, source: str
) -> tuple[uuid.UUID, str, int] | None:
    row = (
        await conn.execute(
            text(
                "SELECT id, content_hash, version FROM documents "
                "WHERE tenant_id = :t AND source = :s FOR UPDATE"
            ),
            {"t": tenant_id, "s": source},
        )
    ).one_or_none()
    return (row[0], row[1], row[2]) if row is not None else None


async def upsert_document(
    engine: AsyncEngine,
    *,
    tenant_id: uuid.UUID,
    source: str,
    title: str,
    metadata: dict[str, Any],
    content_hash: str,
    chunks: Sequence[ChunkRecord] | StagedChunks,
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
    chunks: Sequence[ChunkRecord] | StagedChunks,
) -> UpsertOutcome:
    """Store a document and its chunks inside the caller's transaction; unchanged content
    writes nothing. The caller commits, so what it writes beside (ingestion marks its staged
    document stored) commits with the document or not at all."""
    current = await _lock_document(conn, tenant_id, source)
    if current is None:
        inserted = (
            await conn.execute(
                text(
                    "INSERT INTO documents (tenant_id, source, title, metadata, content_hash) "
                    "VALUES (:t, :s, :title, CAST(:m AS jsonb), :h) "
                    "ON CONFLICT (tenant_id, source) DO NOTHING RETURNING id"
                ),
                {
                    "t": tenant_id,
                    "s": source,
                    "title": title,
                    "m": json.dumps(metadata),
                    "h": content_hash,
                },
            )
        ).one_or_none()
        if inserted is None:  # a concurrent writer created it first: take its row
            current = await _lock_document(conn, tenant_id, source)
            assert current is not None
        else:
            document_id = inserted[0]
            written = await _insert_chunks(conn, tenant_id, document_id, source, metadata, chunks)
            return UpsertOutcome(
                document_id=str(document_id),
                status="created",
                version=1,
                chunks_written=written,
            )
    document_id, old_hash, version = current
    if old_hash == content_hash:
        return UpsertOutcome(
            document_id=str(document_id),
            status="unchanged",
            version=version,
            chunks_written=0,
        )
    await conn.execute(text("DELETE FROM chunks WHERE document_id = :d"), {"d": document_id})
    await conn.execute(
        text(
            "UPDATE documents SET content_hash = :h, version = version + 1, title = :title, "
            "metadata = CAST(:m AS jsonb), updated_at = now() WHERE id = :d"
        ),
        {"h": content_hash, "title": title, "m": json.dumps(metadata), "d": document_id},
    )
    written = await _insert_chunks(conn, tenant_id, document_id, source, metadata, chunks)
    await _invalidation(conn, tenant_id, document_id, "changed")
    return UpsertOutcome(
        document_id=str(document_id),
        status="updated",
        version=version + 1,
        chunks_written=written,
    )


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
        await _invalidation(conn, tenant_id, row[0], "deleted")
        return True


async def _invalidation(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    document_id: uuid.UUID,
    reason: Literal["changed", "deleted"],
) -> None:
    await conn.execute(
        text(
            "INSERT INTO cache_invalidations (tenant_id, document_id, reason) VALUES (:t, :d, :r)"
        ),
        {"t": tenant_id, "d": str(document_id), "r": reason},
    )


async def _insert_chunks(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    document_id: uuid.UUID,
    source: str,
    metadata: dict[str, Any],
    chunks: Sequence[ChunkRecord] | StagedChunks,
) -> int:
    if isinstance(chunks, StagedChunks):
        await _insert_staged(conn, tenant_id, document_id, source, metadata, chunks)
        return chunks.count
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
    document_id: uuid.UUID,
    source: str,
    metadata: dict[str, Any],
    staged: StagedChunks,
) -> None:
    # One statement: the chunks are inserted by the CTE, their windows by the outer INSERT,
    # each window cut from the chunk's packed window vectors (EMBEDDING_DIM floats each).
    await conn.execute(
        text(
            "WITH staged AS ("
            " SELECT position, text, token_count, embedding, windows,"
            " CAST(:m AS jsonb) || jsonb_build_object('source', CAST(:src AS text),"
            " 'char_start', char_start, 'char_end', char_end, 'windows', window_spans)"
            " || CASE WHEN section <> '' THEN jsonb_build_object('section', section)"
            " ELSE '{}'::jsonb END AS metadata"
            " FROM ingest_chunks WHERE doc_id = :s),"
            " stored AS ("
            " INSERT INTO chunks (tenant_id, document_id, position, text, token_count,"
            " embedding, metadata)"
            " SELECT :t, :d, position, text, token_count, embedding, metadata FROM staged"
            " ORDER BY position RETURNING id, position)"
            " INSERT INTO chunk_windows (chunk_id, window_index, tenant_id, embedding)"
            " SELECT stored.id, w.i, :t, subvector(staged.windows, w.i * :dim + 1, :dim)"
            " FROM stored JOIN staged USING (position)"
            " CROSS JOIN LATERAL generate_series(0, vector_dims(staged.windows) / :dim - 1)"
            " AS w(i) ORDER BY stored.id, w.i"
        ),
        {
            "s": staged.doc_id,
            "t": tenant_id,
            "d": document_id,
            "m": json.dumps(metadata),
            "src": source,
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
