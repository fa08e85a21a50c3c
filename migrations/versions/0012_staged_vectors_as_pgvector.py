"""Staged ingestion vectors become pgvector values: `ingest_chunks.embedding` is a
`vector(384)` and `ingest_chunks.windows` one `vector` holding a chunk's window vectors end to
end (384 floats each).

They were float32 bytes, which the upsert read into Python, formatted as text and sent back for
PostgreSQL to parse: ~90 µs of Python per vector and ~60 MB of text per 10,000 chunks. Now the
gpu worker sends them in pgvector's binary form and the upsert copies them across in SQL.
Vectors staged by a job that is running during the upgrade are converted, not dropped.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

DIM = 384


def _text(raw: bytes) -> str:
    return "[" + ",".join(repr(float(v)) for v in np.frombuffer(raw, dtype="<f4")) + "]"


def _bytes(value: str) -> bytes:
    return np.asarray(value.strip("[]").split(","), dtype="<f4").tobytes()


def _retype(read: str, alter: str, write: str, convert: Callable[[Any], Any]) -> None:
    """Read the staged vectors, change the columns' type, and write them back converted."""
    bind = op.get_bind()
    staged = bind.execute(
        sa.text(
            f"SELECT doc_id, position, {read} FROM ingest_chunks "
            "WHERE embedding IS NOT NULL AND windows IS NOT NULL"
        )
    ).all()
    op.execute(alter)
    if staged:
        bind.execute(
            sa.text(f"UPDATE ingest_chunks SET {write} WHERE doc_id = :d AND position = :p"),
            [{"d": d, "p": p, "e": convert(e), "w": convert(w)} for d, p, e, w in staged],
        )


def upgrade() -> None:
    _retype(
        "embedding, windows",
        f"ALTER TABLE ingest_chunks ALTER COLUMN embedding TYPE vector({DIM}) USING NULL, "
        "ALTER COLUMN windows TYPE vector USING NULL",
        "embedding = CAST(:e AS vector), windows = CAST(:w AS vector)",
        _text,
    )


def downgrade() -> None:
    _retype(
        "CAST(embedding AS text), CAST(windows AS text)",
        "ALTER TABLE ingest_chunks ALTER COLUMN embedding TYPE bytea USING NULL, "
        "ALTER COLUMN windows TYPE bytea USING NULL",
        "embedding = :e, windows = :w",
        _bytes,
    )
