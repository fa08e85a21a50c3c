"""Document storage on real PostgreSQL: idempotent, atomic replacement, invalidation events."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from activities.store import ChunkRecord, apply_invalidations, delete_document, upsert_document
from keel.auth import ensure_tenant
from keel.clients import Clients


def _chunks(words: list[str]) -> list[ChunkRecord]:
    vector = [0.0] * 384
    vector[0] = 1.0
    return [
        ChunkRecord(position=i, text=w, token_count=1, embedding=vector, windows=[vector, vector])
        for i, w in enumerate(words)
    ]


async def _chunk_texts(clients: Clients, document_id: str) -> list[str]:
    async with clients.engine.connect() as conn:
        rows = await conn.execute(
            text("select text from chunks where document_id = :d order by position"),
            {"d": uuid.UUID(document_id)},
        )
        return [r[0] for r in rows]


async def test_upsert_is_idempotent_and_replaces_changed_documents(
    clients: Clients, tenant: str
) -> None:
    tenant_id = await ensure_tenant(clients.engine, tenant)
    args: dict[str, Any] = {
        "tenant_id": tenant_id,
        "source": "hr/leave.md",
        "title": "Leave",
        "metadata": {},
    }
    first = await upsert_document(
        clients.engine, **args, content_hash="h1", chunks=_chunks(["a", "b"])
    )
    assert (first.status, first.version, first.chunks_written) == ("created", 1, 2)

    again = await upsert_document(
        clients.engine, **args, content_hash="h1", chunks=_chunks(["a", "b"])
    )
    assert (again.status, again.chunks_written) == ("unchanged", 0)

    changed = await upsert_document(
        clients.engine, **args, content_hash="h2", chunks=_chunks(["c"])
    )
    assert (changed.status, changed.version) == ("updated", 2)
    assert changed.document_id == first.document_id
    assert await _chunk_texts(clients, first.document_id) == ["c"]
    async with clients.engine.connect() as conn:
        windows = (
            await conn.execute(
                text(
                    "select count(*) from chunk_windows w join chunks c on c.id = w.chunk_id "
                    "where c.document_id = :d"
                ),
                {"d": uuid.UUID(first.document_id)},
            )
        ).scalar_one()
        events = (
            await conn.execute(
                text("select reason from cache_invalidations where document_id = :d"),
                {"d": first.document_id},
            )
        ).all()
    assert windows == 2
    assert [e[0] for e in events] == ["changed"]


async def test_delete_removes_chunks_and_invalidates_cached_answers(
    clients: Clients, tenant: str
) -> None:
    tenant_id = await ensure_tenant(clients.engine, tenant)
    stored = await upsert_document(
        clients.engine,
        tenant_id=tenant_id,
        source="faq.md",
        title="FAQ",
        metadata={},
        content_hash="h",
        chunks=_chunks(["x"]),
    )
    cited_key = f"keel:exact:{uuid.uuid4().hex}"
    await clients.redis.set(cited_key, "answer")
    await clients.redis.sadd(f"keel:cites:{tenant_id}:{stored.document_id}", cited_key)

    assert await delete_document(clients.engine, tenant_id=tenant_id, source="faq.md")
    assert await _chunk_texts(clients, stored.document_id) == []
    assert not await delete_document(clients.engine, tenant_id=tenant_id, source="faq.md")

    assert await apply_invalidations(clients.engine, clients.redis) >= 1
    assert await clients.redis.get(cited_key) is None
