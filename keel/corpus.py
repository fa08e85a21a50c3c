"""The tenant's corpus generation: what the answer cache keys on (migration 0006).

Bumped by a trigger in every transaction that writes the tenant's documents, so an answer
cached before a document was added, changed or deleted is never served after it.
"""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.quickdb import QuickDb

GENERATION_SQL = (
    "coalesce((SELECT generation FROM corpus_generations WHERE tenant_id = :t), 0)::text"
)

_QUICK_SQL = "SELECT generation FROM corpus_generations WHERE tenant_id = %(t)s"


def generation_tag(raw: object) -> str:
    """The generation as it enters cache keys."""
    return hashlib.sha256(f"gen:{raw}".encode()).hexdigest()[:16]


async def corpus_generation(db: AsyncConnection | QuickDb, tenant_id: uuid.UUID) -> str:
    """The tenant's generation tag, read through a connection or the API's `QuickDb`."""
    params = {"t": tenant_id}
    if isinstance(db, QuickDb):
        row = await db.fetchone(_QUICK_SQL, params)
        raw = row[0] if row else 0
    else:
        raw = (await db.execute(text(f"SELECT {GENERATION_SQL}"), params)).scalar_one()
    return generation_tag(raw)
