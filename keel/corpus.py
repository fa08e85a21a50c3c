"""The tenant's corpus generation: what the answer cache keys on (migration 0006).

Bumped by a trigger in every transaction that writes the tenant's documents, so an answer
cached before a document was added, changed or deleted is never served after it.
"""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

GENERATION_SQL = (
    "coalesce((SELECT generation FROM corpus_generations WHERE tenant_id = :t), 0)::text"
)


def generation_tag(raw: object) -> str:
    """The generation as it enters cache keys."""
    return hashlib.sha256(f"gen:{raw}".encode()).hexdigest()[:16]


async def corpus_generation(conn: AsyncConnection, tenant_id: uuid.UUID) -> str:
    raw = (await conn.execute(text(f"SELECT {GENERATION_SQL}"), {"t": tenant_id})).scalar_one()
    return generation_tag(raw)
